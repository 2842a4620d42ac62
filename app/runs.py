"""The app's one door into the engine: cached runs, the gallery, the twins' bodies.

Running a scenario is the expensive part of a page; stepping through it is
not. `RunCache` keeps the last runs keyed by the hash of their source, so a
step request renders from a Run already in memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from app.limits import MAX_RUN_CACHE_BYTES, WEB_LIMITS
from engine import gallery as engine_gallery
from engine.gallery import GalleryEntry
from engine.invariants import summarise
from engine.mm_types import State
from engine.present.report import run_json, suite_json
from engine.sim.simulation import Run, Suite, run_text
from engine.sim.trace import Lock


def source_key(source: str) -> str:
    """The cache key of a scenario: the SHA-256 of its text."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


Runner = Callable[[str, str | None], tuple[Run | Suite, int]]
"""Runs a scenario (or a harness file, every test) under a policy: its Run
(Suite) and its size in bytes (what the cache counts)."""


def run_in_process(source: str, policy: str | None = None) -> tuple[Run | Suite, int]:
    """Run here, under the web's limits, unbounded in time (the tests' way)."""
    return run_text(source, WEB_LIMITS, policy), 0


class RunCache:
    """An LRU of Run objects (a harness file's: Suite) keyed by source hash;
    safe across worker threads.

    `runner` makes a Run (app.guard.Guard.run runs it in a worker process
    under a CPU-time bound); the cache keeps at most `size` runs and
    `max_bytes` bytes of them. Concurrent requests for one uncached source
    wait for a single run. A ScenarioError (or a refused run) propagates and
    is not cached: the editor shows it, and a broken source costs one parse
    per request.
    """

    def __init__(
        self, size: int = 64, runner: Runner | None = None, max_bytes: int = MAX_RUN_CACHE_BYTES
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.runner: Runner = runner or run_in_process
        self._runs: OrderedDict[str, tuple[Run | Suite, int]] = OrderedDict()
        self._bytes = 0
        self._running: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str) -> Run | Suite | None:
        with self._lock:
            hit = self._runs.get(key)
            if hit is None:
                return None
            self._runs.move_to_end(key)
            return hit[0]

    def get(self, source: str, policy: str | None = None) -> Run | Suite:
        """The run of `source`, under `policy` if given (else its `// @policy`);
        of a harness file, the Suite of every test's run."""
        key = source_key(source if policy is None else f"{source}\0policy={policy}")
        run = self._cached(key)
        if run is not None:
            return run
        with self._lock:
            running = self._running.setdefault(key, threading.Lock())
        with running:  # one run per source at a time; the others find it cached
            run = self._cached(key)
            if run is not None:
                return run
            try:
                run, size = self.runner(source, policy)
                with self._lock:
                    if key not in self._runs:
                        self._runs[key] = (run, size)
                        self._bytes += size
                    self._runs.move_to_end(key)
                    while len(self._runs) > 1 and (
                        len(self._runs) > self.size or self._bytes > self.max_bytes
                    ):
                        self._bytes -= self._runs.popitem(last=False)[1][1]
            finally:
                with self._lock:
                    self._running.pop(key, None)
        return run

    def __len__(self) -> int:
        return len(self._runs)


def gallery() -> tuple[GalleryEntry, ...]:
    """The packaged scenarios, as engine.gallery lists them."""
    return engine_gallery.gallery()


def gallery_entry(slug: str) -> GalleryEntry | None:
    """The packaged scenario named `slug`, if there is one."""
    return engine_gallery.find(slug)


def scenario_json(run: Run | Suite) -> dict[str, object]:
    """The CLI's JSON document for a whole run (engine.report.run_json), or for
    every test of a harness file (suite_json)."""
    return suite_json(run) if isinstance(run, Suite) else run_json(run)


def invariant_violations(state: State, locks: tuple[Lock, ...] = ()) -> list[dict[str, Any]]:
    """engine.invariants.summarise() of a snapshot (a run of pages broken
    the same way is one record), as dicts."""
    return [v.as_dict() for v in summarise(state, locks)]
