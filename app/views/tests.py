"""A harness file's tests: their list with verdicts, one test's assertions, its source.

A pasted selftest file (engine.scenario.harness) runs as a Suite, one Run
per test. The page steps through one test; this lays out what is around
it: every test with its result (pass, fail, skip and why), the chosen
test's assertions with both values, and its lines of the file with each
assertion's outcome at its line.

An assertion takes no inner step: it reads the state the steps before it
left. So it is shown, and linked, at the last inner step before it.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from app.links import StageLinks
from app.views.source import SourceLine
from engine.scenario import ast
from engine.sim.simulation import Run, StatementRun, Suite


class TestEntry(BaseModel):
    """One test of the file, as the list shows it."""

    name: str
    line: int
    result: str
    """"pass", "fail" or "skip"."""
    reason: str | None
    passed: int
    failed: int
    url: str
    current: bool


class CheckView(BaseModel):
    """One assertion as it ran: where, in which process, with both values."""

    line: int
    phase: str
    """"setup", "body" or "teardown": the fixture's checks are the test's too."""
    process: str
    text: str
    """`ASSERT_EQ(a, b): 0x7f.. == 0x7f.. failed`, as the harness prints it."""
    passed: bool
    step: int
    """The inner step whose state it checked."""
    url: str


class SuiteView(BaseModel):
    """The tests of the file and the assertions of the one shown."""

    tests: list[TestEntry]
    current: TestEntry
    checks: list[CheckView]
    counts: dict[str, int]
    """How many tests passed, failed and were skipped."""


def find_test(suite: Suite, wanted: str | None) -> tuple[ast.HarnessTest, Run] | None:
    """The test `wanted` names (merge.NAME or NAME), the first if None; None if no test does."""
    pairs = list(zip(suite.harness.tests, suite.runs, strict=True))
    if wanted is None:
        return pairs[0] if pairs else None
    return next(((t, r) for t, r in pairs if t.answers_to(wanted)), None)


def checked_step(st: StatementRun) -> int:
    """The inner step whose state a statement without steps of its own read."""
    return st.first if st.first < st.last else max(st.first - 1, 0)


def suite_view(suite: Suite, shown: Run, links: StageLinks) -> SuiteView:
    """The list of tests, `shown` marked, and `shown`'s assertions linked to their steps."""
    tests = []
    for test, run in zip(suite.harness.tests, suite.runs, strict=True):
        verdict = run.verdict
        assert verdict is not None
        tests.append(
            TestEntry(
                name=test.name,
                line=test.line,
                result=verdict.result,
                reason=verdict.reason,
                passed=verdict.passed,
                failed=verdict.failed,
                url=links.of_test(test.name),
                current=run is shown,
            )
        )
    checks = []
    for st in shown.statements:
        check = st.outcome.check
        if check is None:
            continue
        step = checked_step(st)
        checks.append(
            CheckView(
                line=st.outcome.statement.line,
                phase=st.outcome.phase or "body",
                process=st.outcome.statement.process,
                text=check.describe(),
                passed=check.passed,
                step=step,
                url=links.page(step),
            )
        )
    results = [t.result for t in tests]
    counts = {r: results.count(r) for r in ("pass", "fail", "skip")}
    current = next(t for t in tests if t.current)
    return SuiteView(tests=tests, current=current, checks=checks, counts=counts)


def test_lines(
    source: str, suite: Suite, test: ast.HarnessTest, run: Run, step: int | None
) -> list[SourceLine]:
    """The test's own lines of the file, numbered as in the file.

    A line where the body ran a statement is marked with its first run (an
    assertion: its first failure, if any, with both values); the line of
    the statement at `step`, and of the assertions that read its state,
    is current. The fixture's setup and teardown step too, but their lines
    are the fixture's (merge.c's own when the file has none), not listed.
    """
    lines = source.splitlines() or [""]
    later = [t.line for t in suite.harness.tests if t.line > test.line]
    end = _block_end(lines, test.line, min(later, default=len(lines) + 1) - 1)
    shown: dict[int, tuple[int, StatementRun]] = {}
    current: set[int] = set()
    for i, st in enumerate(run.statements):
        outcome = st.outcome
        if outcome.phase != "body":
            continue
        line = outcome.statement.line
        known = shown.get(line)
        failed_first = (
            outcome.check is not None
            and not outcome.check.passed
            and known is not None
            and known[1].outcome.check is not None
            and known[1].outcome.check.passed
        )
        if known is None or failed_first:
            shown[line] = (i, st)
        if step is not None and (
            (st.first <= step < st.last) or (st.first == st.last and checked_step(st) == step)
        ):
            current.add(line)
    out = []
    for n in range(test.line, end + 1):
        hit = shown.get(n)
        ran = hit[1] if hit else None
        check = ran.outcome.check if ran else None
        out.append(
            SourceLine(
                number=n,
                text=lines[n - 1] if n <= len(lines) else "",
                statement=hit[0] if hit else None,
                result=ran.outcome.result.result if ran and check is None else None,
                first_step=checked_step(ran) if ran else None,
                current=n in current,
                check=check.describe() if check else None,
                passed=check.passed if check else None,
            )
        )
    return out


_TOKENS = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|[{}]", re.DOTALL)


def _block_end(lines: list[str], start: int, limit: int) -> int:
    """The line of the brace that closes the block opened at or after line
    `start` (comments and literals skipped), at most `limit`."""
    text = "\n".join(lines[start - 1 : limit])
    depth = 0
    for token in _TOKENS.finditer(text):
        if token.group() in "{}":
            depth += 1 if token.group() == "{" else -1
            if depth == 0:
                return start + text.count("\n", 0, token.start())
    return limit
