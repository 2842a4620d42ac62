"""The source listing: the scenario's lines, each statement's marked."""

from __future__ import annotations

from pydantic import BaseModel

from engine.sim.simulation import Run


class SourceLine(BaseModel):
    number: int
    text: str
    statement: int | None
    result: str | None
    first_step: int | None
    current: bool
    error_col: int | None = None
    check: str | None = None
    """An assertion's outcome with both values (a harness test's line)."""
    passed: bool | None = None


def source_lines(
    source: str, run: Run | None, current: int | None, error: tuple[int, int] | None = None
) -> list[SourceLine]:
    """The scenario's lines, each statement's lines marked, the current one flagged."""
    lines = source.splitlines() or [""]
    owner: dict[int, int] = {}
    if run is not None:
        starts = [st.outcome.statement.line for st in run.statements]
        for i, line in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else len(lines) + 1
            for n in range(line, end):
                text = lines[n - 1].strip() if n <= len(lines) else ""
                if n == line or (text and not text.startswith(("//", "/*", "*"))):
                    owner[n] = i
                else:
                    break
    out = []
    for n, text in enumerate(lines, start=1):
        s = owner.get(n)
        first = s is not None and run is not None and run.statements[s].outcome.statement.line == n
        out.append(
            SourceLine(
                number=n,
                text=text,
                statement=s,
                result=run.statements[s].outcome.result.result
                if first and run and s is not None
                else None,
                first_step=run.statements[s].first if first and run and s is not None else None,
                current=s is not None and s == current,
                error_col=error[1] if error and error[0] == n else None,
            )
        )
    return out
