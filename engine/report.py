"""A whole run as the CLI's JSON document.

Ours. The contract (docs: scenario-language.md) fixes the keys every step
carries; each statement here also carries its inner steps, each with its
global index and, once engine/invariants.py exists, the invariant
violations in the state after it. Snapshots are left out: a document
proportional to what happened, not to the size of memory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from engine.mm_types import State
from engine.simulation import Run

Checker = Callable[[State], list[Any]]


def invariant_checker() -> Checker | None:
    """engine.invariants.check when the module exists, else None (no key)."""
    try:
        module = importlib.import_module("engine.invariants")
    except ImportError:
        return None
    check: Checker | None = getattr(module, "check", None)
    return check


def run_json(run: Run) -> dict[str, object]:
    """{"steps": [...]} with "error" when the run stopped early."""
    check = invariant_checker()
    steps = []
    for statement in run.statements:
        entry = statement.record()
        inner = []
        for index in range(statement.first, statement.last):
            step = run.steps[index]
            item = step.as_dict()
            item["index"] = index
            if check is not None:
                item["violations"] = [v.as_dict() for v in check(step.state)]
            inner.append(item)
        entry["inner"] = inner
        steps.append(entry)
    document: dict[str, object] = {"steps": steps}
    if run.error is not None:
        document["error"] = run.error
    return document
