"""Fuzzing strategies and the properties every fuzzed run must keep.

`scenarios()` generates scenario text from the language's grammar (calls,
stores, loads, forks, labels, expressions with every operator and constant,
comments with markup); `mutants()` mutates the gallery's scenarios
character by character and line by line. `check()` runs one and asserts
what the rules promise: a ScenarioError names a line and a column inside
the text, a run stays within its named limits and a stopped run says which
limit or which line. `exercise()` calls an API operation from its OpenAPI
schema: no 5xx, and each 4xx says what in the request was wrong.
tests/test_fuzz.py runs a few hundred examples; benchmarks/fuzz.py 100,000.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import fields
from typing import Any
from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.gallery import gallery
from engine.scenario.errors import ScenarioError
from engine.sim.limits import LimitExceeded, Limits
from engine.sim.simulation import Run, run_source
from engine.uapi import MADV, MAP, MREMAP, PROT

# Small limits: the fuzzer looks for crashes, not for large runs.
FUZZ_LIMITS = Limits(max_steps=2_000, max_populated_pages=4_096, max_processes=16)

NAMES = ("p", "q", "r", "ptr", "ptr2", "carveout", "x")
PROCESSES = ("child", "child2", "c3")
CONSTANTS = (*PROT, *MAP, *MREMAP, *MADV, "NULL", "page_size", "MAP_FAILED")
CALLS = {
    "mmap": 6,
    "munmap": 2,
    "mprotect": 3,
    "madvise": 3,
    "mremap": 5,
    "memset": 3,
    "pin": 2,
    "unpin": 2,
    "gup_fast_pin": 2,
    "swapout": 2,
    "migrate_entry": 2,
}
BINARY = ("+", "-", "*", "/", "%", "<<", ">>", "|", "&", "^")
MARKUP = (
    "<script>window.pwned=1</script>",
    '<img src=x onerror="window.pwned=1">',
    "</textarea><b>bold</b>",
    "&amp; &lt; {{ 7*7 }} {% raw %}",
)


def _numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 64).map(str),
        st.integers(0, 64).map(lambda n: f"{n} * page_size"),
        st.sampled_from(["0", "1", "-1", "4096", "0x7ffff7ff6000", "0xffffffffffffffff"]),
        st.integers(0, 2**64 - 1).map(hex),
        st.sampled_from(["'x'", "'\\0'", "'\\n'"]),
    )


def _expressions(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    leaves = [_numbers(), st.sampled_from(CONSTANTS)]
    if names:
        leaves += [st.sampled_from(names), st.sampled_from(names).map(lambda n: f"&{n}[page_size]")]
    return st.recursive(
        st.one_of(leaves),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(BINARY), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"-{e}"),
            inner.map(lambda e: f"~{e}"),
            inner.map(lambda e: f"(char *){e}"),
        ),
        max_leaves=5,
    )


def _address(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    if not names or draw(st.integers(0, 5)) == 0:
        return draw(_expressions(names))
    base = draw(st.sampled_from(names))
    return draw(
        st.sampled_from(
            [base, f"{base} + {draw(st.integers(0, 40))} * page_size", f"&{base}[page_size]"]
        )
    )


def _call(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    name = draw(st.sampled_from(sorted(CALLS)))
    length = f"{draw(st.integers(0, 40))} * page_size"
    if name == "mmap":
        prot = draw(st.sampled_from(["PROT_READ | PROT_WRITE", "PROT_NONE", "PROT_READ"]))
        flags = draw(
            st.sampled_from(
                [
                    "MAP_PRIVATE | MAP_ANONYMOUS",
                    "MAP_SHARED | MAP_ANONYMOUS",
                    "MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED",
                    "MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE",
                ]
            )
        )
        addr = "NULL" if draw(st.booleans()) else _address(draw, names)
        args = [addr, length, prot, flags, "-1", "0"]
    elif name == "mremap":
        flags = draw(
            st.sampled_from(
                [
                    "0",
                    "MREMAP_MAYMOVE",
                    "MREMAP_MAYMOVE | MREMAP_FIXED",
                    "MREMAP_MAYMOVE | MREMAP_DONTUNMAP",
                    "MREMAP_MAYMOVE | MREMAP_RELOCATE_ANON",
                    "MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON",
                ]
            )
        )
        new_length = f"{draw(st.integers(0, 40))} * page_size"
        args = [_address(draw, names), length, new_length, flags, _address(draw, names)]
    elif name in ("mprotect", "madvise"):
        third = draw(st.sampled_from(sorted(PROT) if name == "mprotect" else sorted(MADV)))
        args = [_address(draw, names), length, third]
    elif name == "memset":
        args = [_address(draw, names), "'x'", length]
    elif name == "gup_fast_pin":
        args = [_address(draw, names), draw(st.sampled_from(["1", "2"]))]
    else:
        args = [_address(draw, names), length]
    if draw(st.integers(0, 9)) == 0:  # wrong arity, or wild arguments
        arity = CALLS[name] + draw(st.sampled_from([-1, 0, 1]))
        args = draw(st.lists(_expressions(names), min_size=max(arity, 0), max_size=max(arity, 0)))
    return f"{name}({', '.join(args)})"


@st.composite
def scenarios(draw: st.DrawFn) -> str:
    """Scenario text from the grammar, mostly valid, with some errors on purpose.

    Variables and processes are used after they are made, except now and then.
    """
    names: list[str] = []
    processes: list[str] = []
    lines = []
    if draw(st.integers(0, 9)) == 0:
        policy = draw(
            st.sampled_from(
                ["posted", "pinned_aborts", "no_pin_check", "isolate", "split", "bogus"]
            )
        )
        lines.append(f"// @policy {policy}")
    if draw(st.booleans()):
        lines.append(
            "char *carveout = mmap(NULL, 32 * page_size, PROT_NONE, "
            "MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);"
        )
        names.append("carveout")
    for _ in range(draw(st.integers(0, 12))):
        known = tuple(names)
        wild = draw(st.integers(0, 19)) == 0
        label = ""
        if processes and draw(st.booleans()):
            label = draw(st.sampled_from(processes)) + ": "
        elif wild:
            label = "nosuch: "
        kind = draw(
            st.sampled_from(["assign", "assign", "call", "store", "load", "fork", "comment"])
        )
        if kind == "assign":
            name = draw(st.sampled_from(NAMES))
            ctype = (
                "" if name in names else draw(st.sampled_from(["char *", "int ", "unsigned long "]))
            )
            lines.append(f"{label}{ctype}{name} = {_call(draw, known)};")
            names.append(name)
        elif kind == "call":
            lines.append(f"{label}{_call(draw, known)};")
        elif kind == "store" and (known or wild):
            target = draw(st.sampled_from(known or NAMES))
            index = draw(_expressions(known))
            lines.append(f"{label}{target}[{index}] = {draw(_numbers())};")
        elif kind == "load" and (known or wild):
            name = draw(st.sampled_from(NAMES))
            ctype = "" if name in names else "char "
            lines.append(f"{label}{ctype}{name} = *({_address(draw, known)});")
            names.append(name)
        elif kind == "fork" and len(processes) < len(PROCESSES):
            child = PROCESSES[len(processes)]
            lines.append(f"{label}pid_t {child} = fork();")
            processes.append(child)
        else:
            lines.append(f"// {draw(st.sampled_from(MARKUP))} {draw(st.text(max_size=20))}")
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n", " \t"]))


GALLERY = tuple(e.source for e in gallery())
NOISE = string.printable + "\x00\u00e9\u2028\ufeff<>&\"'{}[]();*"


@st.composite
def mutants(draw: st.DrawFn) -> str:
    """A gallery scenario, mutated: characters and lines deleted, duplicated, swapped, inserted."""
    text = draw(st.sampled_from(GALLERY))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "dup_line", "drop_line", "swap"]))
        if not text:
            text = draw(st.text(NOISE, max_size=10))
            continue
        at = draw(st.integers(0, len(text) - 1))
        if op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif op == "insert":
            text = text[:at] + draw(st.text(NOISE, min_size=1, max_size=8)) + text[at:]
        elif op == "replace":
            text = text[:at] + draw(st.sampled_from([*NOISE, *BINARY, *CONSTANTS])) + text[at + 1 :]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            if op == "dup_line":
                lines.insert(i, lines[i])
            elif op == "drop_line":
                del lines[i]
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def any_scenario() -> st.SearchStrategy[str]:
    return st.one_of(scenarios(), mutants(), st.text(NOISE, max_size=200))


LIMIT_NAMES = frozenset(f.name for f in fields(Limits))
# A browser's textarea ends a line at CRLF, CR or LF; so does the parser.
LINE_BREAK = re.compile(r"\r\n|\r|\n")
STOPPED = re.compile(r"limit (\w+) \((\d+)\) exceeded: \d+|line (\d+), column (\d+): .+", re.S)


def assert_located(source: str, line: int, col: int) -> None:
    """(line, col), 1-based, is a place in `source`: at most one past a line's end."""
    lines = LINE_BREAK.split(source)
    assert 1 <= line <= len(lines), (line, len(lines))
    assert 1 <= col <= len(lines[line - 1]) + 1, (line, col, lines[line - 1])


def assert_within(run: Run, limits: Limits, source: str) -> str | None:
    """No snapshot of the run passed a limit, and a stopped run names what stopped
    it: the limit and its value (returned), or the line and column of `source`."""
    assert len(run.steps) <= limits.max_steps
    for step in run.steps:
        assert len(step.state.processes) <= limits.max_processes
        for name, mm in step.state.processes.items():
            assert len(mm.pagetable) <= limits.max_populated_pages, name
    if run.error is None:
        return None
    stopped = STOPPED.fullmatch(run.error)
    assert stopped is not None, run.error
    if stopped[1] is None:
        assert_located(source, int(stopped[3]), int(stopped[4]))
        return None
    assert stopped[1] in LIMIT_NAMES, run.error
    assert int(stopped[2]) == getattr(limits, stopped[1]), run.error
    return stopped[1]


def check(source: str, limits: Limits = FUZZ_LIMITS) -> str:
    """Parse and run `source` and assert the properties above. The outcome's kind:
    "ok", "scenario_error", "stopped" (at a line) or "limit NAME".

    Any exception but ScenarioError (and a LimitExceeded, should one escape
    run_source, which reports limits in Run.error) propagates: a crash.
    """
    try:
        run = run_source(source, limits)
    except ScenarioError as err:
        assert err.message.strip(), err
        assert str(err).startswith(f"line {err.line}, column {err.col}: "), err
        assert_located(source, err.line, err.col)
        return "scenario_error"
    except LimitExceeded as err:
        assert err.name in LIMIT_NAMES and err.limit == getattr(limits, err.name), err
        return f"limit {err.name}"
    limit = assert_within(run, limits, source)
    if limit is not None:
        return f"limit {limit}"
    return "stopped" if run.error else "ok"


# --- the API, from its OpenAPI schema -------------------------------------------------------

REQUEST_PARTS = ("body", "query", "path", "header", "cookie")


def says_what_was_wrong(ctx: Any, response: Any, case: Any) -> None:
    """A schemathesis check: a 4xx names what in the request was wrong.

    A JSON error lists each problem with the field (`loc`) and why (`msg`),
    a scenario's with its line and column, one over a limit (a run's, the
    client's rate, the store's) with the limit's name; a 404 names the path parameter
    that found nothing; a text or HTML error page says it in words.
    """
    if not 400 <= response.status_code < 500:
        return
    kind = "".join(response.headers.get("content-type", [""])).split(";")[0]
    if kind == "application/json":
        detail = json.loads(response.text)["detail"]
        if isinstance(detail, list):
            assert detail, response.text
            for item in detail:
                assert item["msg"], item
                if "limit" in item:  # over a named limit (422, 429, 507), not a wrong field
                    assert item["limit"] and item["type"], item
                    continue
                assert item["loc"][0] in REQUEST_PARTS and len(item["loc"]) >= 2, item
                if item.get("type") == "scenario_error":
                    assert item["line"] >= 1 and item["col"] >= 1, item
        else:
            assert isinstance(detail, str) and detail.strip(), response.text
            wanted = [unquote(str(v)) for v in (case.path_parameters or {}).values()]
            if response.status_code == 404 and wanted:
                assert any(repr(v) in detail for v in wanted), (detail, wanted)
    elif kind == "text/plain":
        assert response.text.strip(), response.status_code
    else:
        assert kind == "text/html", kind
        assert re.search(r"<h1[^>]*>\s*\S", response.text), response.text[:500]


def api_operations(app: object) -> list[Any]:
    """Every operation of the app's OpenAPI schema, as schemathesis sees it (in-process ASGI)."""
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def exercise(operation: Any, examples: int) -> int:
    """Call `operation` with `examples` generated requests; fail on a 5xx or on a
    4xx that does not say what was wrong. The count run."""
    from schemathesis.checks import not_a_server_error

    calls = 0

    @settings(
        max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(operation.as_strategy())
    def call(case: Any) -> None:
        nonlocal calls
        calls += 1
        response = case.call()
        case.validate_response(response, checks=(not_a_server_error, says_what_was_wrong))

    call()
    return calls
