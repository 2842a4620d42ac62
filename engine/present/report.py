"""A whole run as the CLI's JSON document.

Ours. The contract (scenario-language.md) fixes the keys every statement
carries; each statement here also carries its inner steps, each with its
global index and the invariant violations in the state after it (the
engine.invariants checks, with the locks held then), and the metadata
(engine.accounting) the state after the statement holds. Snapshots are left
out: the document grows with what happened, not with the size of memory.
"""

from __future__ import annotations

from engine.accounting import metadata
from engine.invariants import check, lock_order
from engine.sim.simulation import Run


def run_json(run: Run) -> dict[str, object]:
    """{"steps": [...]}, plus "error" when the run stopped early."""
    steps = []
    last: tuple[object, tuple[str, ...], list[dict[str, object]]] | None = None
    for statement in run.statements:
        entry = statement.record()
        inner = []
        for index in range(statement.first, statement.last):
            step = run.steps[index]
            item = step.as_dict()
            item["index"] = index
            # A step that changed nothing keeps the same State object: check it once.
            if last is None or last[0] is not step.state or last[1] != step.held:
                last = (
                    step.state,
                    step.held,
                    [v.as_dict() for v in check(step.state, step.held)],
                )
            item["violations"] = last[2] + [v.as_dict() for v in lock_order(step.acquired)]
            inner.append(item)
        entry["inner"] = inner
        if statement.last > statement.first:
            entry["metadata"] = metadata(run.steps[statement.last - 1].state).as_dict()
        steps.append(entry)
    document: dict[str, object] = {"steps": steps}
    if run.error is not None:
        document["error"] = run.error
    return document
