"""The command line: run a scenario, check it against the host kernel, list the gallery.

Every command that takes a scenario takes a file, `-` (standard input), or
a gallery scenario's name (`dontunmap` or `dontunmap.c`, as `list` names
it), so an installed package runs its own gallery; a file of that name wins.
The web service's commands (`serve`, `links`) are added by app/cli.py, the
installed `mremap-viz` command: the engine knows nothing of the web.

Ours. Exit codes, so scripts can tell the cases apart:
0 done (verify: the kernels agree), 1 verify found differences or a
harness test failed, 2 the scenario does not parse (or cannot be read), 3
the run stopped on a limit or a scenario error after the statements it
printed, 4 verify cannot check this scenario here (a call or flag mainline
does not have, a host that is not Linux, no C compiler for the executor).

A kselftest harness file (FIXTURE/TEST_F blocks, as merge.c) runs test by
test and prints the harness's own summary (`ok 3 merge.name`, `# PASSED:
n / m tests passed.`); `--test NAME` runs one as a scenario is run.

`run --policy NAME` runs the RELOCATE_ANON walk under that policy
(engine.sim.policy.POLICIES) instead of the one the file's `// @policy
NAME` line chooses (else `posted`). `verify` runs the model under the
file's policy too, though it changes nothing there: a policy only decides
what the RELOCATE_ANON walk does, and verify refuses a scenario (skips a
harness test) that asks for the walk, which mainline does not have.

`run --rmap-model cow_context` runs the scenario on the COW-context
proposal's reverse map instead of Linux 6.18's anon_vmas (a file's
`// @rmap cow_context` line chooses it too); `verify` refuses it, since no
kernel runs the proposal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

from engine.cow_context import PROPOSAL
from engine.gallery import find
from engine.mm_types import RMAP_MODELS
from engine.present.report import run_json, suite_json, verdict_json, write_json
from engine.present.statement import metadata_lines, render_statement, step_lines
from engine.present.text import WIDTH, fit
from engine.scenario import ast
from engine.scenario.errors import ScenarioError
from engine.scenario.harness import is_harness, parse_harness
from engine.scenario.machine import TestMachine, Verdict
from engine.scenario.parse import parse
from engine.sim.backend import PAGE_FIELDS, CallResult, ProcessPages, ProcessTables
from engine.sim.limits import LimitExceeded
from engine.sim.policy import POLICIES
from engine.sim.simulation import (
    Run,
    cyclic_gc_paused,
    rmap_model_note,
    run_harness,
    run_scenario,
    run_test,
)
from engine.uapi import MREMAP
from engine.verify.compare import Difference, compare
from engine.verify.real import NotMainline, RealMachine, RealMachineError
from engine.verify.steps import record, recorded, simulated

EXIT_OK = 0
EXIT_DIFFERENT = 1
EXIT_PARSE = 2
EXIT_STOPPED = 3
EXIT_UNCHECKABLE = 4

PROPOSED_FLAGS = ("MREMAP_RELOCATE_ANON", "MREMAP_MUST_RELOCATE_ANON")
PROPOSED_MASK = MREMAP["MREMAP_RELOCATE_ANON"] | MREMAP["MREMAP_MUST_RELOCATE_ANON"]
UNFINISHED_SHOWN = 20  # inner steps of a statement a limit cut short


class _Failure(Exception):
    """A message for stderr and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


Commands = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
"""Adds subcommands to the parser; each sets `command` to a function of the args."""


def main(argv: Sequence[str] | None = None, more: Sequence[Commands] = ()) -> int:
    """Parse the arguments, run the command, return its exit code.

    `more` adds commands beside the engine's (app/cli.py: serve, links).
    """
    args = _parser(more).parse_args(argv)
    try:
        code: int = args.command(args)
    except _Failure as failure:
        sys.stdout.flush()
        print(failure, file=sys.stderr)
        return failure.code
    except BrokenPipeError:  # `... | head`: the reader has seen enough
        sys.stderr.close()
        return EXIT_OK
    return code


def _parser(more: Sequence[Commands]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mremap-viz",
        description="Step through Linux mremap() and the MREMAP_RELOCATE_ANON series.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run a scenario on the simulated kernel")
    run.add_argument("file", metavar="FILE", help=SCENARIO_HELP)
    run.add_argument("--json", action="store_true", help="print the JSON contract instead")
    run.add_argument(
        "--pages",
        action="store_true",
        help="with --json: every populated page of every process after each statement",
    )
    run.add_argument("--test", metavar="NAME", help="a harness file's one test to run")
    run.add_argument(
        "--policy",
        choices=tuple(POLICIES),
        help="the RELOCATE_ANON walk's policy: posted (the v1 code as posted) or one its"
        " changelog or review proposed (README: the policies);"
        " default: the scenario's // @policy line, else posted",
    )
    run.add_argument(
        "--rmap-model",
        choices=RMAP_MODELS,
        help="the reverse map: anon_vma (Linux 6.18, the default) or cow_context (the"
        " COW-context proposal, branch project/cow-context at a4ac1966: no kernel runs it);"
        " default: the scenario's // @rmap line, else anon_vma",
    )
    run.set_defaults(command=_run)
    verify = commands.add_parser(
        "verify", help="run a scenario on this machine's kernel too, and compare"
    )
    verify.add_argument("file", metavar="FILE", help=SCENARIO_HELP)
    verify.add_argument(
        "--pages",
        action="store_true",
        help="compare page by page too (pagemap, kpagecount, kpageflags; slower)",
    )
    verify.add_argument("--test", metavar="NAME", help="a harness file's one test to check")
    verify.add_argument(
        "--rmap-model",
        choices=RMAP_MODELS,
        help="only anon_vma can be verified: cow_context is a proposal no kernel runs",
    )
    verify.set_defaults(command=_verify)
    show = commands.add_parser("show", help="print a scenario's source, e.g. a gallery one's")
    show.add_argument("file", metavar="FILE", help=SCENARIO_HELP)
    show.set_defaults(command=_show)
    listing = commands.add_parser("list", help="list the gallery's scenarios")
    listing.set_defaults(command=_list)
    for add in more:
        add(commands)
    return parser


SCENARIO_HELP = "the scenario: a file, - for standard input, or a gallery name (see list)"


def _read(path: str) -> tuple[str, bytes]:
    """The scenario's display name and its bytes: standard input, a file, or
    else the gallery scenario of that name."""
    if path == "-":
        return "<stdin>", sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return path, f.read()
    except OSError as e:
        entry = find(path.removesuffix(".c"))
        if entry is None or isinstance(e, IsADirectoryError):
            hint = " (nor a gallery scenario: mremap-viz list names them)"
            raise _Failure(f"{path}: cannot read: {e.strerror}{hint}", EXIT_PARSE) from None
        return f"{entry.slug}.c", entry.source.encode("utf-8")


def _load(path: str) -> tuple[str, ast.Scenario | ast.HarnessFile]:
    """The source's display name and its parse (a harness file or a scenario,
    with what its directives choose); errors as FILE:LINE:COL."""
    name, source = _read(path)
    try:
        parsed = parse_harness(source) if is_harness(source) else parse(source)
    except ScenarioError as e:
        raise _Failure(f"{name}:{e.line}:{e.col}: {e.message}", EXIT_PARSE) from None
    return name, parsed


def _run(args: argparse.Namespace) -> int:
    """Run on the model, under --policy and --rmap-model, else the file's directives."""
    if args.pages and not args.json:
        raise _Failure("--pages is part of the JSON document: add --json", EXIT_PARSE)
    name, scenario = _load(args.file)
    if isinstance(scenario, ast.HarnessFile):
        return _run_harness(name, scenario, args)
    if args.test is not None:
        raise _Failure(f"{name}: --test needs a harness file (TEST_F blocks)", EXIT_PARSE)
    run = run_scenario(scenario, policy=args.policy, rmap_model=args.rmap_model)
    if args.json:
        with _page_limit(name), cyclic_gc_paused():
            write_json(run, sys.stdout, pages=args.pages)
        print()
    else:
        _print_statements(run)
    if run.error is not None:
        raise _Failure(f"{name}: stopped: {run.error}", EXIT_STOPPED)
    return EXIT_OK


@contextmanager
def _page_limit(name: str) -> Iterator[None]:
    """A --pages document past max_page_records stops the run, named."""
    try:
        yield
    except LimitExceeded as e:
        raise _Failure(f"{name}: stopped: {e}", EXIT_STOPPED) from None


def _print_statements(run: Run) -> None:
    """Each statement with its inner steps, its picture and its metadata."""
    note = rmap_model_note(run.rmap_model)
    if note is not None:
        print("\n".join(fit([note])) + "\n")
    for i in range(len(run.statements)):
        print(render_statement(run, i, inner=True))
        if run.statements[i].last > run.statements[i].first:
            state = run.statement_states(i)[1]
            print("\n".join(fit(metadata_lines(state, sizes=i == len(run.statements) - 1))))
        print()
    _print_unfinished(run)


def _run_harness(name: str, harness: ast.HarnessFile, args: argparse.Namespace) -> int:
    """Every test, or the one --test names, as the kselftest harness reports them."""
    if args.test is not None:
        test = _find_test(name, harness, args.test)
        run = run_test(harness, test, policy=args.policy, rmap_model=args.rmap_model)
        if args.json:
            with _page_limit(name):
                document = {**run_json(run, pages=args.pages), **verdict_json(run)}
            print(json.dumps(document))
        else:
            _print_statements(run)
            print("\n".join(fit(_verdict_lines(1, run))))
        return EXIT_DIFFERENT if _failed(run) else EXIT_OK
    suite = run_harness(harness, policy=args.policy, rmap_model=args.rmap_model)
    runs = suite.runs
    if args.json:
        with _page_limit(name):
            document = suite_json(suite, pages=args.pages)
        print(json.dumps(document))
    else:
        print("\n".join(fit(_summary(runs))))
    return EXIT_DIFFERENT if any(_failed(r) for r in runs) else EXIT_OK


def _find_test(name: str, harness: ast.HarnessFile, wanted: str) -> ast.HarnessTest:
    """A test by its full name (merge.ksm_merge) or its own (ksm_merge)."""
    for test in harness.tests:
        if test.answers_to(wanted):
            return test
    known = ", ".join(t.name for t in harness.tests)
    raise _Failure(f"{name}: no test '{wanted}'; the file has: {known}", EXIT_PARSE)


def _failed(run: Run) -> bool:
    return run.verdict is None or run.verdict.result == "fail"


def _verdict_lines(number: int, run: Run) -> list[str]:
    """One test's lines of the harness's TAP output."""
    verdict = run.verdict
    assert verdict is not None
    lines = [f"#  RUN           {run.test} ..."]
    for st in run.statements:
        check = st.outcome.check
        if check is not None and not check.passed:
            where = st.outcome.statement
            lines.append(f"# {where.line}:{where.process}: {check.describe()}")
    if verdict.result == "skip":
        lines += [f"#      SKIP      {verdict.reason}", f"ok {number} {run.test} # SKIP"]
    elif verdict.result == "pass":
        lines += [f"#            OK  {run.test}", f"ok {number} {run.test}"]
    else:
        lines += [
            f"# {verdict.reason}",
            f"#          FAIL  {run.test}",
            f"not ok {number} {run.test}",
        ]
    return lines


def _summary(runs: list[Run]) -> list[str]:
    """The kselftest harness's summary: TAP lines per test, then the totals."""
    lines = ["TAP version 13", f"1..{len(runs)}", f"# Starting {len(runs)} tests."]
    for number, run in enumerate(runs, 1):
        lines += _verdict_lines(number, run)
    results = [r.verdict.result if r.verdict else "fail" for r in runs]
    passed, failed, skipped = (results.count(r) for r in ("pass", "fail", "skip"))
    word = "FAILED" if failed else "PASSED"
    lines.append(f"# {word}: {passed + skipped} / {len(runs)} tests passed.")
    lines.append(f"# Totals: pass:{passed} fail:{failed} xfail:0 xpass:0 skip:{skipped} error:0")
    return lines


def _print_unfinished(run: Run) -> None:
    """The last inner steps of a statement a limit stopped, so the cause shows."""
    done = run.statements[-1].last if run.statements else 0
    unfinished = run.steps[done:]
    if run.error is None or not unfinished:
        return
    print(f"unfinished statement: {len(unfinished)} inner steps ran, the last ones:")
    lines: list[str] = []
    for step in unfinished[-UNFINISHED_SHOWN:]:
        lines += step_lines(step.function, step.summary, step.events, step.warnings)
    print("\n".join(fit(lines)))


def _show(args: argparse.Namespace) -> int:
    """The scenario's text, as it would be run."""
    _, source = _read(args.file)
    sys.stdout.write(source.decode("utf-8", "replace"))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    """Each packaged scenario's file name and its `// Title:` line."""
    folder = resources.files("engine").joinpath("scenarios")
    files = (
        sorted((f for f in folder.iterdir() if f.name.endswith(".c")), key=lambda f: f.name)
        if folder.is_dir()
        else []
    )
    if not files:
        print("no gallery scenarios are packaged yet")
    titles = [(f.name, _title(f.read_text(encoding="utf-8"))) for f in files]
    width = max((len(name) for name, _ in titles), default=0)
    lines = [f"{name:<{width}}  {title}" for name, title in titles]
    if any(len(line) > WIDTH for line in lines):  # then each title under its name
        lines = fit(line for name, title in titles for line in (name, "  " + title))
    print("\n".join(lines))
    return EXIT_OK


def _title(text: str) -> str:
    """The `// Title: ...` first line's text."""
    first = text.split("\n", 1)[0].strip()
    return first.removeprefix("//").strip().removeprefix("Title:").strip()


# --- verify ---------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    """Run on the model (under the file's `// @policy`, which only the proposed
    walk reads) and on this machine's kernel; print what differs."""
    if not sys.platform.startswith("linux"):
        raise _Failure("verify runs the scenario on a Linux kernel: this host is not Linux", 4)
    name, scenario = _load(args.file)
    if (args.rmap_model or scenario.rmap_model) == "cow_context":
        raise _Failure(
            f"{name}: rmap model cow_context is {PROPOSAL}; no kernel runs it, so it"
            " cannot be verified (verify checks the anon_vma model, Linux 6.18)",
            EXIT_UNCHECKABLE,
        )
    if isinstance(scenario, ast.HarnessFile):
        return _verify_harness(name, scenario, args.test, args.pages)
    used = sorted(_proposed_flags(scenario))
    if used:
        raise _proposed(name, " and ".join(used))
    run = run_scenario(scenario)
    sim_steps = simulated(run, pages=args.pages)
    real_steps = _real_steps(name, scenario, args.pages)
    return _report(run, sim_steps, real_steps)


def _verify_harness(name: str, harness: ast.HarnessFile, wanted: str | None, pages: bool) -> int:
    """Each test on the model and on this kernel, the same interpreter driving both."""
    tests = [_find_test(name, harness, wanted)] if wanted else list(harness.tests)
    lines = ["TAP version 13", f"1..{len(tests)}"]
    agreed = 0
    for number, test in enumerate(tests, 1):
        run = run_test(harness, test)
        verdict = run.verdict
        assert verdict is not None
        if verdict.result == "skip":
            lines.append(f"ok {number} {test.name} # SKIP {verdict.reason}")
            agreed += 1
            continue
        try:
            real_steps, real_verdict = _real_test(name, harness, test, pages)
        except _Failure as failure:
            if failure.code != EXIT_UNCHECKABLE:
                raise
            lines.append(f"ok {number} {test.name} # SKIP {failure}")
            agreed += 1
            continue
        sim_steps = simulated(run, pages)
        differences = compare(sim_steps, real_steps) + _assertion_differences(sim_steps, real_steps)
        if real_verdict.result != verdict.result:
            differences.append(
                Difference(
                    test.line, test.name, "result", (verdict.result,), (real_verdict.result,)
                )
            )
        if differences:
            lines.append(f"not ok {number} {test.name}: {len(differences)} differences")
            lines += [f"# {line}" for d in differences for line in str(d).split("\n")]
        else:
            agreed += 1
            lines.append(
                f"ok {number} {test.name}: {verdict.result} on both, {len(sim_steps)} steps agree"
            )
    lines.append(f"# engine and kernel agree on {agreed} / {len(tests)} tests")
    print("\n".join(fit(lines)))
    return EXIT_OK if agreed == len(tests) else EXIT_DIFFERENT


def _real_test(
    name: str, harness: ast.HarnessFile, test: ast.HarnessTest, pages: bool
) -> tuple[list[dict[str, object]], Verdict]:
    """One test run for real: its steps and its verdict."""
    try:
        with RealMachine() as machine:
            backend = _MainlineOnly(name, machine)
            tester = TestMachine(harness, test, backend)
            steps = record(tester.run(), backend, pages)
    except NotMainline as e:
        raise _Failure(f"{e}: only the simulated kernel has it", EXIT_UNCHECKABLE) from None
    except RealMachineError as e:
        raise _Failure(f"{name}: cannot run on this kernel: {e}", EXIT_UNCHECKABLE) from None
    verdict = tester.verdict or Verdict("fail", "the run stopped", tester.passed, tester.failed)
    return steps, verdict


def _assertion_differences(
    sim_steps: Sequence[Mapping[str, Any]], real_steps: Sequence[Mapping[str, Any]]
) -> list[Difference]:
    """Assertions that pass on one kernel and fail on the other, with both values."""
    found = []
    for sim, real in zip(sim_steps, real_steps, strict=False):
        a, b = sim.get("assertion"), real.get("assertion")
        if isinstance(a, dict) and isinstance(b, dict) and a["passed"] != b["passed"]:
            found.append(
                Difference(sim["line"], sim["source"], "assertion", (a["text"],), (b["text"],))
            )
    return found


def _proposed(name: str, flags: str) -> _Failure:
    return _Failure(
        f"{name}: {flags} exist only in the proposed RELOCATE_ANON series,"
        " not in mainline: a mainline kernel cannot check them",
        EXIT_UNCHECKABLE,
    )


def _real_steps(name: str, scenario: ast.Scenario, pages: bool) -> list[dict[str, object]]:
    steps: list[dict[str, object]] = []
    try:
        with RealMachine() as machine:
            steps = recorded(scenario, _MainlineOnly(name, machine), pages)
    except NotMainline as e:
        raise _Failure(f"{name}: {e}: only the simulated kernel has it", EXIT_UNCHECKABLE) from None
    except RealMachineError as e:
        raise _Failure(f"{name}: cannot run on this kernel: {e}", EXIT_UNCHECKABLE) from None
    return steps


def _report(
    run: Run, sim_steps: list[dict[str, object]], real_steps: Sequence[Mapping[str, Any]]
) -> int:
    differences = compare(sim_steps, real_steps)
    if any(
        found.fields != PAGE_FIELDS
        for step in real_steps
        for found in step.get("pages", {}).values()
    ):
        print(
            "not root: pages compared by pagemap's present, swap and exclusive bits only"
            " (PFNs, /proc/kpagecount and /proc/kpageflags need root)"
        )
    if run.error is not None:
        print(f"the simulated run stopped: {run.error}")
    if differences:
        for difference in differences:
            print("\n".join(fit([str(difference)])))
        print(f"{len(differences)} difference{'s' if len(differences) > 1 else ''}")
        return EXIT_DIFFERENT
    print(f"engine and kernel agree on {len(sim_steps)} statements")
    return EXIT_OK


def _proposed_flags(scenario: ast.Scenario) -> set[str]:
    """The proposed series' flag names a scenario mentions anywhere."""
    return {n.name for s in scenario.statements for n in _names(s.action)} & set(PROPOSED_FLAGS)


def _names(node: ast.HExpr | ast.Store) -> Iterator[ast.Name]:
    if isinstance(node, ast.Name):
        yield node
    elif isinstance(node, ast.Unary):
        yield from _names(node.operand)
    elif isinstance(node, ast.Binary):
        yield from _names(node.left)
        yield from _names(node.right)
    elif isinstance(node, ast.Call):
        for arg in node.args:
            yield from _names(arg)
    elif isinstance(node, ast.Load):
        yield from _names(node.address)
    elif isinstance(node, ast.Store):
        yield from _names(node.address)
        yield from _names(node.value)


class _MainlineOnly:
    """RealMachine, refusing an mremap whose flags carry the proposed bits
    however they were spelt (a literal 8 is EINVAL on mainline, not a check)."""

    def __init__(self, name: str, machine: RealMachine) -> None:
        self._name = name
        self._machine = machine

    def syscall(self, process: str, name: str, args: list[int]) -> CallResult:
        if name == "mremap" and len(args) > 3 and args[3] & PROPOSED_MASK:
            raise _proposed(self._name, f"mremap flags {args[3]:#x}: bits {PROPOSED_MASK:#x}")
        return self._machine.syscall(process, name, args)

    def fork(self, parent: str, child: str) -> CallResult:
        return self._machine.fork(parent, child)

    def store(self, process: str, addr: int, value: int) -> CallResult:
        return self._machine.store(process, addr, value)

    def load(self, process: str, addr: int) -> CallResult:
        return self._machine.load(process, addr)

    def maps(self) -> dict[str, list[str]]:
        return self._machine.maps()

    def procmap_query(self, process: str, addr: int) -> tuple[int, int] | None:
        return self._machine.procmap_query(process, addr)

    def resident(self) -> dict[str, dict[str, int]]:
        return self._machine.resident()

    def pages(self) -> dict[str, ProcessPages]:
        return self._machine.pages()

    def page_tables(self) -> dict[str, ProcessTables]:
        return self._machine.page_tables()
