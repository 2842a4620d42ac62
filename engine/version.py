"""Which engine told a story: a version to bump, and a fingerprint of a run.

Ours. A shared link stores both; when today's engine runs the same scenario
and its fingerprint differs, the viewer says at which statement the story
changed. Bump ENGINE_VERSION with any change that alters what a run shows.
"""

from __future__ import annotations

import hashlib
import json

from engine.present.report import run_json
from engine.sim.simulation import Run, Suite

ENGINE_VERSION = "6.18-relocate-v1.2"
"""The model's version: the kernel it follows, the series, and our revision."""

FINGERPRINT_CHARS = 16


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]


def fingerprint(run: Run | Suite) -> list[str]:
    """One short hash per statement of the run's JSON document (engine.present.report),
    then one of how the run ended; of a harness file's Suite, one per test
    (its name and its own fingerprint), then one of how many there are.

    Every part of that document is a function of the scenario and the
    engine (no times, no addresses of Python objects), so equal lists mean
    the same story, statement by statement (test by test).
    """
    if isinstance(run, Suite):
        return [_digest([r.test, fingerprint(r)]) for r in run.runs] + [_digest(len(run.runs))]
    document = run_json(run)
    steps = document["steps"]
    assert isinstance(steps, list)
    return [_digest(step) for step in steps] + [_digest({"error": document.get("error")})]


def first_difference(then: list[str], now: list[str]) -> int | None:
    """The index of the first statement (a Suite's: test) whose story differs,
    or None if none does.

    The last entry of a fingerprint is how the run ended; a difference there
    only is reported as the statement after the last one.
    """
    if then == now:
        return None
    for i, (a, b) in enumerate(zip(then[:-1], now[:-1], strict=False)):
        if a != b:
            return i
    return min(len(then), len(now)) - 1
