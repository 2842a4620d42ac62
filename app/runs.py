"""The app's one door into the engine: cached runs, the gallery, the twins' bodies.

Running a scenario is the expensive part of a page; stepping through it is
not. `RunCache` keeps the last runs keyed by the hash of their source, so a
step request renders from a Run already in memory; and what the pages
derive from a run (a step's panel, the run's JSON document) once for all
the twins of a step, and for every page that shows the same run.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from cachetools import LRUCache

from app.limits import MAX_API_DETAIL_REFS, MAX_DERIVED_VIEWS, MAX_RUN_CACHE_BYTES, WEB_LIMITS
from engine import gallery as engine_gallery
from engine.gallery import GalleryEntry
from engine.invariants import summarise
from engine.mm_types import State
from engine.present.report import run_json, suite_json, write_json
from engine.sim.limits import LimitExceeded
from engine.sim.simulation import Run, Suite, cyclic_gc_paused, run_text
from engine.sim.trace import Lock


def source_key(source: str) -> str:
    """The cache key of a scenario: the SHA-256 of its text."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


Runner = Callable[[str, str | None], tuple[Run | Suite, int]]
"""Runs a scenario (or a harness file, every test) under a policy: its Run
(Suite) and its size in bytes (what the cache counts)."""

JsonRunner = Callable[[str, bool], tuple[bytes, int]]
"""POST /api/run's body of a scenario (with or without detail), and its size."""

T = TypeVar("T")


@dataclass(frozen=True)
class Body:
    """What a worker answers instead of the Run: POST /api/run's body
    (api_json), per-object lists if `detail`."""

    detail: bool


def api_json(run: Run | Suite, detail: bool) -> bytes:
    """POST /api/run's body: the CLI's JSON (engine.present.report), with
    what each step created, changed and freed as runs of ids, or with
    `detail` one by one, up to MAX_API_DETAIL_REFS objects in all."""
    if detail:
        runs = run.runs if isinstance(run, Suite) else (run,)
        refs = sum(len(s.created) + len(s.changed) + len(s.freed) for r in runs for s in r.steps)
        if refs > MAX_API_DETAIL_REFS:
            raise LimitExceeded("MAX_API_DETAIL_REFS", MAX_API_DETAIL_REFS, refs)
    with cyclic_gc_paused():
        if isinstance(run, Suite):
            return json.dumps(suite_json(run, detail)).encode("utf-8", "surrogatepass")
        out = io.StringIO()
        write_json(run, out, detail)
    return out.getvalue().encode("utf-8", "surrogatepass")


def run_in_process(source: str, policy: str | None = None) -> tuple[Run | Suite, int]:
    """Run here, under the web's limits, unbounded in time (the tests' way)."""
    return run_text(source, WEB_LIMITS, policy), 0


def json_in_process(source: str, detail: bool = False) -> tuple[bytes, int]:
    """api_json of a run here (the tests' way)."""
    body = api_json(run_text(source, WEB_LIMITS), detail)
    return body, len(body)


class RunCache:
    """An LRU of Run objects (a harness file's: Suite) and API bodies keyed
    by source hash; safe across worker threads.

    `runner` makes a Run (app.guard.Guard.run runs it in a worker process
    under a CPU-time bound), `json_runner` POST /api/run's body (encoded in
    that worker); the cache keeps at most `size` entries and `max_bytes`
    bytes of them. Concurrent requests for one uncached source
    wait for a single run. A ScenarioError (or a refused run) propagates and
    is not cached: the editor shows it, and a broken source costs one parse
    per request.

    `derived` keeps the last `max_derived` values computed from a run (a
    step's StepView, the run's JSON document) by the run's key: a step's
    page, fragment and twins, and a short link to the same source, share
    one. A run is deterministic, so a value outlives the run's eviction.
    """

    def __init__(
        self,
        size: int = 64,
        runner: Runner | None = None,
        max_bytes: int = MAX_RUN_CACHE_BYTES,
        json_runner: JsonRunner | None = None,
        max_derived: int = MAX_DERIVED_VIEWS,
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.runner: Runner = runner or run_in_process
        self.json_runner: JsonRunner = json_runner or json_in_process
        self._runs: OrderedDict[str, tuple[Run | Suite | bytes, int]] = OrderedDict()
        self._bytes = 0
        self._running: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._derived: LRUCache[tuple[str, Hashable], object] = LRUCache(max_derived)
        self.derivations = 0
        """How many derived values were computed (not found): what the tests count."""

    def _cached(self, key: str) -> Run | Suite | bytes | None:
        with self._lock:
            hit = self._runs.get(key)
            if hit is None:
                return None
            self._runs.move_to_end(key)
            return hit[0]

    @staticmethod
    def key(source: str, policy: str | None = None) -> str:
        """The cache key of the run of `source` under `policy`."""
        return source_key(source if policy is None else f"{source}\0policy={policy}")

    def holds(self, source: str, policy: str | None = None) -> bool:
        """Whether the run of `source` under `policy` is cached (asking costs no run)."""
        with self._lock:
            return self.key(source, policy) in self._runs

    def get(self, source: str, policy: str | None = None) -> Run | Suite:
        """The run of `source`, under `policy` if given (else its `// @policy`);
        of a harness file, the Suite of every test's run."""
        key = self.key(source, policy)
        run = self._entry(key, lambda: self.runner(source, policy))
        assert isinstance(run, Run | Suite)
        return run

    def derived(self, key: str, what: Hashable, make: Callable[[], T]) -> T:
        """`what` of the run cached under `key` (its `make()`, computed once while
        kept). Two threads asking at once may both compute it: the value is the same."""
        with self._lock:
            hit = self._derived.get((key, what))
        if hit is not None:
            return cast(T, hit)
        value = make()
        with self._lock:
            self._derived[(key, what)] = value
            self.derivations += 1
        return value

    def json(self, source: str, detail: bool = False) -> bytes:
        """POST /api/run's body for `source` (api_json)."""
        key = source_key(f"{source}\0json={int(detail)}")
        body = self._entry(key, lambda: self.json_runner(source, detail))
        assert isinstance(body, bytes)
        return body

    def _entry(
        self, key: str, make: Callable[[], tuple[Run | Suite | bytes, int]]
    ) -> Run | Suite | bytes:
        value = self._cached(key)
        if value is not None:
            return value
        with self._lock:
            running = self._running.setdefault(key, threading.Lock())
        with running:  # one run per source at a time; the others find it cached
            value = self._cached(key)
            if value is not None:
                return value
            try:
                value, size = make()
                with self._lock:
                    if key not in self._runs:
                        self._runs[key] = (value, size)
                        self._bytes += size
                    self._runs.move_to_end(key)
                    while len(self._runs) > 1 and (
                        len(self._runs) > self.size or self._bytes > self.max_bytes
                    ):
                        self._bytes -= self._runs.popitem(last=False)[1][1]
            finally:
                with self._lock:
                    self._running.pop(key, None)
        return value

    def __len__(self) -> int:
        return len(self._runs)


@functools.cache
def gallery() -> tuple[GalleryEntry, ...]:
    """The packaged scenarios, as engine.gallery lists them (read once: they are
    the package's files)."""
    return engine_gallery.gallery()


@functools.cache
def _by_slug() -> dict[str, GalleryEntry]:
    return {e.slug: e for e in gallery()}


def gallery_entry(slug: str) -> GalleryEntry | None:
    """The packaged scenario named `slug`, if there is one."""
    return _by_slug().get(slug)


def scenario_json(run: Run | Suite) -> dict[str, object]:
    """The CLI's JSON document for a whole run (engine.report.run_json), or for
    every test of a harness file (suite_json)."""
    return suite_json(run) if isinstance(run, Suite) else run_json(run)


def invariant_violations(state: State, locks: tuple[Lock, ...] = ()) -> list[dict[str, Any]]:
    """engine.invariants.summarise() of a snapshot (a run of pages broken
    the same way is one record), as dicts."""
    return [v.as_dict() for v in summarise(state, locks)]
