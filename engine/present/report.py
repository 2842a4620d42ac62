"""A whole run as the CLI's JSON document.

Ours. The contract (scenario-language.md) fixes the keys every statement
carries; each statement here also carries its inner steps, each with its
global index and the invariant violations in the state after it (the
engine.invariants checks, with the locks held then), and the metadata
(engine.accounting) the state after the statement holds. Snapshots are left
out, violations come summarised (a run of pages broken the same way is one
record) and checked incrementally (invariants.Checker), locks taken in turn
are one line: the document grows with what happened, not with the size of
memory, and is written one statement at a time. Without `detail`, what a
step created, changed or freed comes as runs of ids (present.trace.ref_runs):
then the document grows with the steps alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TextIO

from engine.accounting import metadata
from engine.invariants import Checker, lock_order
from engine.present.trace import event_values, lock_summary, ref_runs
from engine.sim.simulation import Run, Suite
from engine.sim.trace import ObjRef, Step


def run_json(run: Run, detail: bool = True) -> dict[str, object]:
    """{"steps": [...]}, plus "error" when the run stopped early."""
    return {"steps": list(statement_records(run, detail)), **_error(run)}


def verdict_json(run: Run) -> dict[str, object]:
    """How one harness test ended: result, reason, assertions passed and failed."""
    verdict = run.verdict
    assert verdict is not None
    return {
        "result": verdict.result,
        "reason": verdict.reason,
        "assertions": {"passed": verdict.passed, "failed": verdict.failed},
    }


def suite_json(suite: Suite, detail: bool = True) -> dict[str, object]:
    """A harness file's JSON (`run FILE --json`): each test's verdict and steps, the notes."""
    tests = [
        {"name": r.test, **verdict_json(r), "steps": run_json(r, detail)["steps"]}
        for r in suite.runs
    ]
    notes = [{"line": n.line, "col": n.col, "text": n.text} for n in suite.harness.notes]
    return {"tests": tests, "notes": notes}


def write_json(run: Run, out: TextIO, detail: bool = True) -> None:
    """json.dumps(run_json(run, detail)), written one statement at a time:
    the document is never whole in memory."""
    out.write('{"steps": [')
    for i, entry in enumerate(statement_records(run, detail)):
        out.write((", " if i else "") + json.dumps(entry))
    out.write("]")
    if run.error is not None:
        out.write(', "error": ' + json.dumps(run.error))
    out.write("}")


def statement_records(run: Run, detail: bool = True) -> Iterator[dict[str, object]]:
    """Each statement's JSON entry, in order, one at a time (to stream)."""
    checker = Checker()
    last: tuple[object, object, list[dict[str, object]]] | None = None
    for statement in run.statements:
        entry = statement.record()
        inner = []
        for index in range(statement.first, statement.last):
            step = run.steps[index]
            item = step_json(step, detail)
            item["index"] = index
            # A step that changed nothing keeps the same State object: check it once.
            if last is None or last[0] is not step.state or last[1] != step.held:
                found = checker.summarise(step.state, step.held, step.folios_touched())
                last = (step.state, step.held, [v.as_dict() for v in found])
            item["violations"] = last[2] + [v.as_dict() for v in lock_order(step.acquired)]
            inner.append(item)
        entry["inner"] = inner
        if statement.last > statement.first:
            entry["metadata"] = metadata(run.steps[statement.last - 1].state).as_dict()
        yield entry


def _error(run: Run) -> dict[str, object]:
    return {} if run.error is None else {"error": run.error}


def step_json(step: Step, detail: bool = True) -> dict[str, object]:
    """One inner step's JSON form, without its state; its objects one by
    one with `detail`, else as runs of ids."""
    refs = _refs if detail else ref_runs
    return {
        "function": step.function,
        "summary": step.summary,
        "locks": lock_summary(step.locks, step.held),
        "created": refs(step.created),
        "changed": refs(step.changed),
        "freed": refs(step.freed),
        "events": [
            {"function": e.function, "decision": e.decision, "values": event_values(e)}
            for e in step.events
        ],
        "warnings": list(step.warnings),
    }


def _refs(refs: tuple[ObjRef, ...]) -> list[str]:
    return [str(ref) for ref in refs]
