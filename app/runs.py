"""The app's one door into the engine: cached runs, the gallery, the twins' bodies.

Running a scenario is the expensive part of a page; stepping through it is
not. `RunCache` keeps the last runs keyed by the hash of their source, so a
step request renders from a Run already in memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from engine import gallery as engine_gallery
from engine.gallery import GalleryEntry
from engine.invariants import check
from engine.mm_types import State
from engine.report import run_json
from engine.simulation import Run, run_source


def source_key(source: str) -> str:
    """The cache key of a scenario: the SHA-256 of its text."""
    return hashlib.sha256(source.encode()).hexdigest()


class RunCache:
    """An LRU of Run objects keyed by source hash; safe across worker threads.

    A ScenarioError from parsing propagates and is not cached: the editor
    shows it, and a broken source costs one parse per request.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, source: str, policy: str | None = None) -> Run:
        """The run of `source`, under `policy` if given (else its `// @policy`)."""
        key = source_key(source if policy is None else f"{source}\0policy={policy}")
        with self._lock:
            run = self._runs.get(key)
            if run is not None:
                self._runs.move_to_end(key)
                return run
        run = run_source(source, policy=policy)
        with self._lock:
            self._runs[key] = run
            self._runs.move_to_end(key)
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)
        return run

    def __len__(self) -> int:
        return len(self._runs)


def gallery() -> tuple[GalleryEntry, ...]:
    """The packaged scenarios, as engine.gallery lists them."""
    return engine_gallery.gallery()


def gallery_entry(slug: str) -> GalleryEntry | None:
    """The packaged scenario named `slug`, if there is one."""
    return engine_gallery.find(slug)


def scenario_json(run: Run) -> dict[str, object]:
    """The CLI's JSON document for a whole run (engine.report.run_json)."""
    return run_json(run)


def invariant_violations(state: State, locks: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """engine.invariants.check() on a snapshot, as dicts."""
    return [v.as_dict() for v in check(state, locks)]
