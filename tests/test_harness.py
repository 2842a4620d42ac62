"""The kselftest harness subset: each construct, each error, each limit.

The harness files here are written for these tests in the selftests' style
(FIXTURE/TEST_F, the fork idiom, PROCMAP_QUERY, polling a MAP_SHARED page);
tests/test_harness_merge.py runs the kernel's own merge.c.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.scenario import ast
from engine.scenario.errors import ScenarioError
from engine.scenario.harness import is_harness, parse_harness
from engine.scenario.limits import MAX_EXECUTED_STATEMENTS, MAX_SOURCE_BYTES
from engine.sim.simulation import Run, run_test
from tests.support.cli import cli
from tests.support.host import real_kernel_unavailable

FIXTURE = """\
#define _GNU_SOURCE
#include "kselftest_harness.h"

FIXTURE(merge)
{
\tunsigned int page_size;
\tchar *carveout;
\tstruct procmap_fd procmap;
};

FIXTURE_SETUP(merge)
{
\tself->page_size = psize();
\tself->carveout = mmap(NULL, 30 * self->page_size, PROT_NONE,
\t\t\t      MAP_ANON | MAP_PRIVATE, -1, 0);
\tASSERT_NE(self->carveout, MAP_FAILED);
\tASSERT_EQ(open_self_procmap(&self->procmap), 0);
}

FIXTURE_TEARDOWN(merge)
{
\tASSERT_EQ(munmap(self->carveout, 30 * self->page_size), 0);
\tASSERT_EQ(close_procmap(&self->procmap), 0);
\tprctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0);
}
"""

PROLOGUE = """\
\tunsigned int page_size = self->page_size;
\tchar *carveout = self->carveout;
\tstruct procmap_fd *procmap = &self->procmap;
\tchar *ptr, *ptr2;
"""


def harness(*tests: str) -> str:
    return FIXTURE + "\n".join(tests) + "\nTEST_HARNESS_MAIN\n"


def a_test(name: str, body: str) -> str:
    return f"TEST_F(merge, {name})\n{{\n{PROLOGUE}{body}}}\n"


def run_one(source: str, name: str | None = None) -> Run:
    parsed = parse_harness(source)
    test = parsed.tests[0] if name is None else next(t for t in parsed.tests if name in t.name)
    return run_test(parsed, test)


def checks(run: Run) -> list[tuple[int, str, bool]]:
    return [
        (s.outcome.statement.line, s.outcome.statement.process, s.outcome.check.passed)
        for s in run.statements
        if s.outcome.check is not None
    ]


def line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


MERGE_BY_MPROTECT = """\
\tptr = mmap(&carveout[page_size], 10 * page_size, PROT_READ | PROT_WRITE,
\t\t   MAP_ANON | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
\tASSERT_NE(ptr, MAP_FAILED);
\tASSERT_EQ(mprotect(ptr, 5 * page_size, PROT_READ), 0);
\tptr[5 * page_size] = 'x';
\tASSERT_EQ(mprotect(&ptr[5 * page_size], 5 * page_size, PROT_READ), 0);
\tASSERT_TRUE(find_vma_procmap(procmap, ptr));
\tASSERT_EQ(procmap->query.vma_start, (unsigned long)ptr);
\tASSERT_EQ(procmap->query.vma_end, (unsigned long)ptr + 10 * page_size);
"""


# -- parsing --------------------------------------------------------------------


def test_a_harness_file_parses_as_it_is_with_notes_for_what_it_skips() -> None:
    parsed = parse_harness(harness(a_test("a", MERGE_BY_MPROTECT), "TEST(b)\n{\n}\n"))
    assert [t.name for t in parsed.tests] == ["merge.a", "global.b"]
    assert parsed.tests[0].fixture is not None
    assert dict(parsed.tests[0].fixture.members) == {
        "page_size": False,
        "carveout": False,
        "procmap": False,
    }
    texts = [n.text for n in parsed.notes]
    assert "skipped: #define _GNU_SOURCE" in texts
    assert any(t.startswith("TEST_HARNESS_MAIN") for t in texts)
    assert is_harness(harness(a_test("a", "")))
    assert not is_harness(
        "char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);"
    )


def test_several_declarators_and_fixture_locals_are_steps_at_their_lines() -> None:
    source = harness(a_test("a", MERGE_BY_MPROTECT))
    body = parse_harness(source).tests[0].body.items
    first = body[0]
    assert isinstance(first, ast.Step)
    assert first.source == "unsigned int page_size = self->page_size;"
    assert (first.line, first.col) == (line_of(source, "page_size = self->page_size"), 2)
    # `char *ptr, *ptr2;` declares two variables and runs nothing.
    assert not any(isinstance(i, ast.Step) and "ptr2" in i.source for i in body)


def test_a_pasted_body_runs_with_merge_c_fixture_and_keeps_its_lines() -> None:
    body = PROLOGUE + MERGE_BY_MPROTECT
    parsed = parse_harness(body)
    assert [t.name for t in parsed.tests] == ["merge.pasted"]
    run = run_test(parsed, parsed.tests[0])
    assert run.verdict is not None and run.verdict.result == "pass", run.verdict
    store = next(
        s for s in run.statements if "ptr[5 * page_size] = 'x'" in s.outcome.statement.source
    )
    assert store.outcome.statement.line == line_of(body, "ptr[5 * page_size] = 'x'")


def test_a_syntax_error_names_its_line_and_column() -> None:
    source = harness(a_test("a", "\tptr = mmap(;\n"))
    with pytest.raises(ScenarioError) as err:
        parse_harness(source)
    assert err.value.line == line_of(source, "ptr = mmap(;")
    assert err.value.col == 13


def test_a_harness_file_takes_directives_with_the_scenario_language_s_errors() -> None:
    body = a_test("one", "ASSERT_EQ(1, 1);")
    parsed = parse_harness("// @policy isolate\n// @rmap cow_context\n" + harness(body))
    assert (parsed.policy, parsed.rmap_model) == ("isolate", "cow_context")
    plain = parse_harness(harness(body))
    assert (plain.policy, plain.rmap_model) == (None, None)
    with pytest.raises(ScenarioError) as info:
        parse_harness(harness(body) + "\n   // @policy spilt\n")
    line = harness(body).count("\n") + 2
    assert (info.value.line, info.value.col) == (line, 15)
    assert "unknown RELOCATE_ANON policy 'spilt'" in info.value.message


def test_a_test_needs_a_known_fixture() -> None:
    with pytest.raises(ScenarioError, match="unknown fixture 'other'") as err:
        parse_harness("TEST_F(other, a)\n{\n}\n")
    assert (err.value.line, err.value.col) == (1, 1)


def test_an_unterminated_comment_is_located() -> None:
    with pytest.raises(ScenarioError, match="unterminated comment") as err:
        parse_harness("TEST(a)\n{\n  /* never closed\n}\n")
    assert (err.value.line, err.value.col) == (3, 3)


def test_deep_nesting_stops_on_the_named_limit() -> None:
    with pytest.raises(ScenarioError, match="MAX_EXPRESSION_DEPTH"):
        parse_harness("TEST(a)\n{\n  int x = " + "(" * 200 + "1" + ")" * 200 + ";\n}\n")


# -- running --------------------------------------------------------------------


def test_asserts_are_results_with_both_values_in_hex_for_addresses() -> None:
    run = run_one(harness(a_test("a", MERGE_BY_MPROTECT)))
    assert run.verdict is not None
    assert (run.verdict.result, run.verdict.passed, run.verdict.failed) == ("pass", 10, 0)
    end = next(
        s.outcome.check
        for s in run.statements
        if s.outcome.check is not None and "vma_end" in s.outcome.check.left_text
    )
    assert end.left == end.right and end.left > 0x10000
    assert f"{end.left:#x} == {end.left:#x} passed" in end.describe()
    record = next(s.record() for s in run.statements if s.outcome.check is end)
    assert record["assertion"]["passed"] is True  # type: ignore[index]


def test_a_failed_assert_ends_the_test_a_failed_expect_does_not() -> None:
    body = (
        "\tEXPECT_EQ(1, 2);\n"
        "\tptr = mmap(NULL, page_size, PROT_READ, MAP_ANON | MAP_PRIVATE, -1, 0);\n"
        "\tASSERT_EQ(ptr, MAP_FAILED);\n"
        "\tASSERT_EQ(munmap(ptr, page_size), 0);\n"
    )
    source = harness(a_test("a", body))
    run = run_one(source)
    assert run.verdict is not None and run.verdict.result == "fail"
    assert (run.verdict.passed, run.verdict.failed) == (4, 2)  # setup 2, teardown 2
    lines = [line for line, _, _ in checks(run)]
    assert line_of(source, "EXPECT_EQ(1, 2)") in lines
    assert line_of(source, "ASSERT_EQ(munmap(ptr") not in lines  # the ASSERT ended the body
    assert line_of(source, "munmap(self->carveout") in lines  # ... and teardown ran
    assert "EXPECT_EQ(1, 2): 1 == 2 failed" in (run.verdict.reason or "")


def test_signed_values_compare_as_c_does() -> None:
    body = "\tint fd = -1;\n\tEXPECT_GE(fd, 0);\n\tEXPECT_LT(fd, 0);\n\tEXPECT_GT((unsigned long)fd, 0);\n"
    run = run_one(harness(a_test("a", body)))
    assert [passed for _, _, passed in checks(run)][2:5] == [False, True, True]


def test_for_loops_if_else_and_compound_assignment() -> None:
    body = (
        "\tint i, n = 0;\n"
        "\tptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,\n"
        "\t\t   MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);\n"
        "\tfor (i = 0; i < 5 * page_size; i += page_size)\n"
        "\t\tptr[i] = 'x';\n"
        "\tfor (i = 0; i < 10; i++) {\n"
        "\t\tif (i % 2)\n\t\t\tcontinue;\n\t\telse if (i == 8)\n\t\t\tbreak;\n\t\tn += 1;\n\t}\n"
        "\tASSERT_EQ(n, 4);\n"
    )
    source = harness(a_test("a", body))
    run = run_one(source)
    assert run.verdict is not None and run.verdict.result == "pass", run.verdict
    stores = [s for s in run.statements if s.outcome.statement.source == "ptr[i] = 'x';"]
    assert len(stores) == 5
    assert stores[-1].maps["main"][1].endswith("rw-p 00000000 00:00 0")


def test_the_fork_idiom_runs_the_child_after_the_parent_waits() -> None:
    body = (
        "\tpid_t pid;\n"
        "\tptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,\n"
        "\t\t   MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);\n"
        "\tptr[0] = 'x';\n"
        "\tpid = fork();\n"
        "\tASSERT_NE(pid, -1);\n"
        "\tif (pid != 0) {\n\t\twait(NULL);\n\t\treturn;\n\t}\n"
        "\tASSERT_EQ(close_procmap(&self->procmap), 0);\n"
        "\tASSERT_EQ(open_self_procmap(&self->procmap), 0);\n"
        "\tptr2 = mmap(&ptr[5 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,\n"
        "\t\t   MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);\n"
        "\tASSERT_TRUE(find_vma_procmap(procmap, ptr));\n"
        "\tASSERT_EQ(procmap->query.vma_end, (unsigned long)ptr + 5 * page_size);\n"
    )
    source = harness(a_test("a", body))
    run = run_one(source)
    assert run.verdict is not None and run.verdict.result == "pass", run.verdict
    order = [(s.outcome.statement.process, s.outcome.statement.source) for s in run.statements]
    wait_at = order.index(("main", "wait(NULL);"))
    child = [i for i, (process, _) in enumerate(order) if process == "pid"]
    assert child and min(child) < wait_at  # the parent waited for the child's steps
    assert order[child[-1]][1].startswith("prctl(")  # the child ran the teardown too
    assert run.scenario.processes == ("main", "pid")


def test_procmap_not_reopened_in_the_child_queries_the_parent() -> None:
    body = (
        "\tpid_t pid = fork();\n"
        "\tif (pid != 0) {\n\t\twait(NULL);\n\t\treturn;\n\t}\n"
        "\tptr = mmap(&carveout[page_size], page_size, PROT_READ, MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);\n"
        "\tEXPECT_TRUE(find_vma_procmap(procmap, ptr));\n"
        "\tEXPECT_EQ(procmap->query.vma_end, (unsigned long)ptr + page_size);\n"
    )
    run = run_one(harness(a_test("a", body)))
    # The parent's carve-out covers ptr: its VMA is the whole 30 pages, not ptr's one.
    assert [passed for _, process, passed in checks(run) if process == "pid"][:2] == [True, False]


POLL = """\
\tvolatile int *poll = self->ipc;
\tpid_t pid = fork();
\tif (pid != 0) {
\t\twhile (poll[0] == 0)
\t\t\t;
\t\tEXPECT_EQ(mprotect(carveout, page_size, PROT_READ), 0);
\t\tpoll[1] = 1;
\t\twait(NULL);
\t\treturn;
\t}
\tpoll[0] = 1;
\twhile (poll[1] == 0)
\t\t;
\tEXPECT_EQ(munmap(carveout, page_size), 0);
"""


def test_processes_polling_a_shared_page_take_turns() -> None:
    fixture = FIXTURE.replace(
        "\tstruct procmap_fd procmap;\n", "\tstruct procmap_fd procmap;\n\tvolatile int *ipc;\n"
    ).replace(
        "\tASSERT_EQ(open_self_procmap(&self->procmap), 0);\n",
        "\tASSERT_EQ(open_self_procmap(&self->procmap), 0);\n"
        "\tself->ipc = mmap(NULL, self->page_size, PROT_READ | PROT_WRITE,\n"
        "\t\t\t MAP_SHARED | MAP_ANON, -1, 0);\n",
    )
    source = fixture + a_test("a", POLL)
    run = run_one(source)
    assert run.verdict is not None and run.verdict.result == "pass", run.verdict
    turns = [
        (s.outcome.statement.process, s.outcome.statement.source.split("(")[0])
        for s in run.statements
        if s.outcome.statement.line > line_of(source, "pid_t pid = fork()")
    ]
    # The parent polls first and waits; the child writes, then waits; the parent
    # runs on, writes; the child finishes.
    names = [process for process, _ in turns]
    assert (
        names.index("pid") < [i for i, (p, s) in enumerate(turns) if s.startswith("EXPECT_EQ")][0]
    )
    mprotect_at = next(i for i, (p, s) in enumerate(turns) if p == "main" and s == "EXPECT_EQ")
    munmap_at = next(i for i, (p, s) in enumerate(turns) if p == "pid" and s == "EXPECT_EQ")
    assert mprotect_at < munmap_at


def test_a_deadlock_fails_the_test_and_names_every_waiter() -> None:
    source = harness(a_test("a", "\tint x = 0;\n\twhile (x == 0)\n\t\t;\n"))
    run = run_one(source)
    assert run.verdict is not None and run.verdict.result == "fail"
    assert f"the loop at {line_of(source, 'while (x == 0)')}:2 never ends" in (
        run.verdict.reason or ""
    )


def test_a_loop_past_the_execution_limit_stops_with_its_name() -> None:
    run = run_one(harness(a_test("a", "\tint i;\n\tfor (i = 0; i >= 0; i++)\n\t\t;\n")))
    assert run.verdict is not None and run.verdict.result == "fail"
    assert f"MAX_EXECUTED_STATEMENTS = {MAX_EXECUTED_STATEMENTS}" in (run.verdict.reason or "")


def test_skip_and_what_is_not_modelled_skip_the_test_with_where() -> None:
    body = '\tif (page_size)\n\t\tSKIP(return, "nothing to see");\n\tASSERT_EQ(1, 2);\n'
    run = run_one(harness(a_test("a", body)))
    assert run.verdict is not None and run.verdict.result == "skip"
    assert (run.verdict.reason or "").startswith("nothing to see (SKIP at ")
    source = harness(a_test("b", '\tint fd = open("./foo", O_RDWR);\n'))
    run = run_one(source)
    assert run.verdict is not None and run.verdict.result == "skip"
    assert run.verdict.reason == f"not modelled: open() at {line_of(source, 'open(')}:11"
    ksm = run_one(harness(a_test("c", "\tprctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0);\n")))
    assert ksm.verdict is not None
    assert (ksm.verdict.reason or "").startswith("not modelled: prctl(PR_SET_MEMORY_MERGE, 1")


def test_errno_follows_a_failed_call() -> None:
    body = (
        "\tptr2 = sys_mremap(carveout, page_size, page_size, MREMAP_FIXED, carveout);\n"
        "\tASSERT_EQ(ptr2, MAP_FAILED);\n\tASSERT_EQ(errno, EINVAL);\n"
    )
    run = run_one(harness(a_test("a", body)))
    assert run.verdict is not None and run.verdict.result == "pass", run.verdict


def test_a_selftest_file_fits_the_source_limit_with_headroom() -> None:
    tests = [a_test(f"t{i}", MERGE_BY_MPROTECT) for i in range(110)]
    source = harness(*tests)
    assert 67_000 < len(source.encode()) < MAX_SOURCE_BYTES
    parsed = parse_harness(source)
    assert len(parsed.tests) == 110
    with pytest.raises(ScenarioError, match="MAX_SOURCE_BYTES"):
        parse_harness(source + "//" + "x" * MAX_SOURCE_BYTES)


# -- the command line -----------------------------------------------------------


PINNED_MUST_RELOCATE = """\
\tptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
\t\t   MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
\tptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
\t\t    MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);
\tmemset(ptr, 'x', 5 * page_size);
\tmemset(ptr2, 'y', 5 * page_size);
\tpin(ptr2 + 2 * page_size, page_size);
\tptr2 = sys_mremap(ptr2, 5 * page_size, 5 * page_size,
\t\t\t MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON, &ptr[5 * page_size]);
\tASSERT_NE(ptr2, MAP_FAILED);
"""


def test_run_takes_a_harness_file_s_policy_and_policy_overrides_it(tmp_path: Path) -> None:
    path = tmp_path / "t.c"
    path.write_text("// @policy pinned_aborts\n" + harness(a_test("pinned", PINNED_MUST_RELOCATE)))
    aborts = cli("run", str(path))  # the walk fails on the pinned folio: MUST fails the move
    assert aborts.returncode == 1 and "not ok 1 merge.pinned" in aborts.stdout, aborts.stderr
    posted = cli("run", str(path), "--policy", "posted")  # skipped, yet counted a success
    assert posted.returncode == 0 and "ok 1 merge.pinned" in posted.stdout, posted.stderr
    one = cli("run", str(path), "--test", "pinned", "--json")
    assert one.returncode == 1 and json.loads(one.stdout)["result"] == "fail"


def test_run_prints_the_harness_summary_and_fails_on_a_failed_test(tmp_path: Path) -> None:
    path = tmp_path / "t.c"
    path.write_text(
        harness(a_test("good", MERGE_BY_MPROTECT), a_test("bad", "\tEXPECT_EQ(1, 2);\n"))
    )
    done = cli("run", str(path))
    assert done.returncode == 1, done.stderr
    assert "ok 1 merge.good" in done.stdout.splitlines()
    assert "not ok 2 merge.bad" in done.stdout.splitlines()
    assert "# FAILED: 1 / 2 tests passed." in done.stdout
    assert all(len(line) <= 75 for line in done.stdout.splitlines())
    one = cli("run", str(path), "--test", "good")
    assert one.returncode == 0 and "line " in one.stdout and "ok 1 merge.good" in one.stdout
    document = json.loads(cli("run", str(path), "--json").stdout)
    assert [(t["name"], t["result"]) for t in document["tests"]] == [
        ("merge.good", "pass"),
        ("merge.bad", "fail"),
    ]
    assert document["tests"][0]["assertions"] == {"passed": 10, "failed": 0}
    assert {"line", "source", "process", "result", "value", "maps"} <= set(
        document["tests"][0]["steps"][0]
    )
    single = json.loads(cli("run", str(path), "--json", "--test", "merge.bad").stdout)
    assert single["result"] == "fail" and "steps" in single
    missing = cli("run", str(path), "--test", "nope")
    assert missing.returncode == 2 and "merge.good, merge.bad" in missing.stderr


@pytest.mark.skipif(real_kernel_unavailable() is not None, reason=str(real_kernel_unavailable()))
def test_verify_agrees_with_the_kernel_test_by_test(tmp_path: Path) -> None:
    path = tmp_path / "t.c"
    fork = a_test(
        "fork",
        "\tpid_t pid;\n\tptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,\n"
        "\t\t   MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);\n\tptr[0] = 'x';\n"
        "\tpid = fork();\n\tif (pid != 0) {\n\t\twait(NULL);\n\t\treturn;\n\t}\n"
        "\tASSERT_EQ(close_procmap(&self->procmap), 0);\n"
        "\tASSERT_EQ(open_self_procmap(&self->procmap), 0);\n"
        "\tptr2 = mmap(&ptr[5 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,\n"
        "\t\t   MAP_ANON | MAP_PRIVATE | MAP_FIXED, -1, 0);\n"
        "\tASSERT_TRUE(find_vma_procmap(procmap, ptr));\n"
        "\tEXPECT_EQ(procmap->query.vma_end, (unsigned long)ptr + 5 * page_size);\n",
    )
    path.write_text(harness(a_test("merge", MERGE_BY_MPROTECT), fork))
    done = cli("verify", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# engine and kernel agree on 2 / 2 tests" in done.stdout
