"""Runs a scenario in a worker process, under a CPU-time, memory and wall-clock bound.

The engine is pure Python: a thread cannot be stopped, and one run may
allocate without bound. So every uncached run goes to one of RUN_WORKERS
long-lived worker processes (`python -c`, talking pickles over a socket
pair: no fork of the threaded server, no re-import of its __main__). For
each run the worker sets its RLIMIT_CPU soft limit to the
CPU time it has used plus MAX_RUN_CPU_SECONDS; its address space is bounded
by RLIMIT_AS (MAX_RUN_MEMORY_BYTES) from the start. A worker that neither
answers nor dies within MAX_RUN_WALL_SECONDS is killed, and a fresh one
takes its place on the next run.

A worker answers with the pickled Run (a harness file's Suite, every test's
Run; limited to MAX_TRACE_BYTES), or, for POST /api/run, with the run's
JSON body encoded there (app.runs.api_json: the server's threads never
spend the GIL on it), or with
what went wrong: a ScenarioError (re-raised here as itself), a limit
(`RunLimit`), or an exception of the engine's own (`EngineFailure`, with the
statement it failed on and the traceback, which is logged). Every failure is
a `RunFailed`; app/security.py turns it into a 422 or 503 page naming the
limit, never a 500.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import queue
import resource
import signal
import socket
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from app import limits as L
from app.runs import Body, api_json
from engine.scenario.errors import ScenarioError
from engine.sim.limits import LimitExceeded, Limits
from engine.sim.simulation import Run, Suite, run_scenario, run_text

log = logging.getLogger("mremap_viz.guard")

# Runs a worker serves before it is replaced (bounds fragmentation and leaks).
RUNS_PER_WORKER = 1000
# Seconds a new worker may take to import the engine, apart from any run's bounds.
STARTUP_SECONDS = 60


class RunFailed(Exception):
    """A run that gave no Run: `status` is the HTTP status, `limit` the limit's name."""

    status = 422
    kind = "run_failed"

    def __init__(self, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.limit = limit

    def detail(self) -> dict[str, Any]:
        """The JSON error detail: what the API's 422 bodies carry."""
        return {"type": self.kind, "msg": self.message, "limit": self.limit}


class RunLimit(RunFailed):
    """The run passed a limit of app/limits.py (CPU, wall clock, memory, trace size)."""

    kind = "limit_exceeded"


class RunBusy(RunFailed):
    """Every worker stayed busy for MAX_QUEUE_SECONDS, or too many runs were waiting."""

    status = 503
    kind = "busy"


class EngineFailure(RunFailed):
    """The simulator itself raised: a bug in the engine, shown as such (not a 500)."""

    kind = "engine_error"

    def __init__(self, message: str, line: int | None, statement: str | None, tb: str) -> None:
        super().__init__(message)
        self.line = line
        self.statement = statement
        self.traceback = tb

    def detail(self) -> dict[str, Any]:
        return {**super().detail(), "line": self.line, "statement": self.statement}


# --- inside the worker -----------------------------------------------------------------


class _CpuExceeded(BaseException):
    """Raised in the worker by SIGXCPU (a BaseException, so engine code cannot swallow it)."""


def _on_sigxcpu(signum: int, frame: FrameType | None) -> None:
    raise _CpuExceeded


def _failed_statement(tb: TracebackType | None) -> tuple[int | None, str | None]:
    """The line and text of the statement run_scenario was running when `tb` was raised."""
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code is run_scenario.__code__:
            result = frame.f_locals.get("result")
            scenario = frame.f_locals.get("scenario")
            if isinstance(result, Run) and scenario is not None:
                index = len(result.statements)
                if index < len(scenario.statements):
                    statement = scenario.statements[index]
                    return statement.line, statement.source
        tb = tb.tb_next
    return None, None


def execute(
    source: str,
    policy: str | None,
    limits: Limits,
    cpu_seconds: int,
    max_trace: int,
    body: Body | None = None,
) -> tuple[Any, ...]:
    """Run `source` (under `policy`) here and describe the outcome as a picklable tuple (the worker's answer).

    ("ok", pickled Run or Suite, or with `body` the API's JSON of it)
    | ("scenario", line, col, message) | ("limit", name, message)
    | ("engine", message, line, statement, traceback)
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    budget = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        budget = min(budget, hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (budget, hard))
        try:
            run = run_text(source, limits, policy)
            data = (
                pickle.dumps(run, protocol=pickle.HIGHEST_PROTOCOL)
                if body is None
                else api_json(run, body.detail)
            )
        finally:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except _CpuExceeded:
        return ("limit", "MAX_RUN_CPU_SECONDS", f"the run took more than {cpu_seconds} s of CPU")
    except ScenarioError as err:
        return ("scenario", err.line, err.col, err.message)
    except LimitExceeded as err:
        return ("limit", err.name, str(err))
    except MemoryError:
        return ("limit", "MAX_RUN_MEMORY_BYTES", "the run needed more memory than it may use")
    except Exception as err:  # the engine's own failure: reported, never a 500
        line, statement = _failed_statement(err.__traceback__)
        return ("engine", f"{type(err).__name__}: {err}", line, statement, traceback.format_exc())
    if len(data) > max_trace:
        return (
            "limit",
            "MAX_TRACE_BYTES",
            f"the run's trace is {len(data)} bytes (limit MAX_TRACE_BYTES = {max_trace})",
        )
    return ("ok", data)


def _worker_main(conn: Connection, memory: int, cpu_seconds: int, max_trace: int) -> None:
    """A worker's loop: one (source, policy, limits) in, one answer out, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    conn.send(("ready",))
    while True:
        try:
            source, policy, limits, body = conn.recv()
        except (EOFError, OSError):
            return
        answer = execute(source, policy, limits, cpu_seconds, max_trace, body)
        try:
            conn.send(answer)
        except MemoryError:
            conn.send(("limit", "MAX_RUN_MEMORY_BYTES", "the run's answer did not fit in memory"))
        if answer[0] == "limit" and answer[1] == "MAX_RUN_MEMORY_BYTES":
            return  # after a MemoryError, start afresh


# --- in the server ---------------------------------------------------------------------


def worker_main(fd: int) -> None:
    """The entry point of a worker process: `python -c` calls it with its end of a socket pair."""
    _worker_main(Connection(fd), *(int(a) for a in sys.argv[1:4]))


class _Worker:
    """A `python -c` child: no fork of a threaded server, no re-import of its __main__."""

    def __init__(self, guard: Guard) -> None:
        parent, child = socket.socketpair()
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        code = f"import app.guard as g; g.worker_main({child.fileno()})"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                str(guard.memory),
                str(guard.cpu_seconds),
                str(guard.max_trace),
            ],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": path},
            start_new_session=True,
        )
        child.close()
        # Below the server: a stream of new scenarios cannot starve cached pages of CPU.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, self.process.pid, L.RUN_NICENESS)
        self.conn = Connection(parent.detach())
        self.runs = 0
        # Starting (imports) is not the run's time: wait for the worker apart from the run.
        try:
            ready = self.conn.poll(STARTUP_SECONDS) and self.conn.recv() == ("ready",)
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise RunBusy(
                f"a worker did not start within {STARTUP_SECONDS} s; try again shortly", None
            )

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def alive(self) -> bool:
        return self.is_alive() and self.runs < RUNS_PER_WORKER

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(timeout=5)
        with contextlib.suppress(Exception):
            self.conn.close()

    def call(
        self, source: str, policy: str | None, limits: Limits, body: Body | None, wall: float
    ) -> tuple[Any, ...]:
        self.runs += 1
        try:
            self.conn.send((source, policy, limits, body))
            if self.conn.poll(wall):
                answer: tuple[Any, ...] = self.conn.recv()
                return answer
        except (EOFError, OSError):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
            code = self.process.returncode
            self.kill()
            if code == -signal.SIGXCPU:
                return ("limit", "MAX_RUN_CPU_SECONDS", "the run used up its CPU time")
            if code == -signal.SIGKILL:
                return ("limit", "MAX_RUN_MEMORY_BYTES", "the run was killed (out of memory)")
            return ("limit", "MAX_RUN_MEMORY_BYTES", f"the run's worker died (exit code {code})")
        self.kill()
        return ("limit", "MAX_RUN_WALL_SECONDS", f"the run took more than {wall:g} s")


@dataclass
class Guard:
    """A small pool of worker processes that run scenarios under the limits of app/limits.py."""

    workers: int = L.RUN_WORKERS
    limits: Limits = L.WEB_LIMITS
    cpu_seconds: int = L.MAX_RUN_CPU_SECONDS
    wall_seconds: float = L.MAX_RUN_WALL_SECONDS
    memory: int = L.MAX_RUN_MEMORY_BYTES
    max_trace: int = L.MAX_TRACE_BYTES
    queue_seconds: float = L.MAX_QUEUE_SECONDS
    max_waiting: int = L.MAX_QUEUED_RUNS

    def __post_init__(self) -> None:
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(self.workers):
            self._idle.put(None)
        self._waiting = 0
        self._lock = threading.Lock()
        self._all: set[_Worker] = set()

    def run(self, source: str, policy: str | None = None) -> tuple[Run | Suite, int]:
        """The Run of `source` (under `policy`; a harness file's Suite) and its pickled size.

        Raises ScenarioError, or a RunFailed naming the limit it passed.
        """
        data = self._call(source, policy, None)
        run: Run | Suite = pickle.loads(data)
        return run, len(data)

    def run_json(self, source: str, detail: bool = False) -> tuple[bytes, int]:
        """POST /api/run's body for `source` (app.runs.api_json), encoded in
        the worker, and its size; raises as run() does."""
        data = self._call(source, None, Body(detail))
        return data, len(data)

    def _call(self, source: str, policy: str | None, body: Body | None) -> bytes:
        """The worker's bytes for `source`: a pickled Run, or the `body` asked for."""
        with self._lock:
            if self._waiting >= self.max_waiting + self.workers:
                raise RunBusy(
                    f"too many scenarios are waiting to run (limit MAX_QUEUED_RUNS = "
                    f"{self.max_waiting}); try again shortly",
                    "MAX_QUEUED_RUNS",
                )
            self._waiting += 1
        try:
            try:
                worker = self._idle.get(timeout=self.queue_seconds)
            except queue.Empty:
                raise RunBusy(
                    f"no worker was free for {self.queue_seconds:g} s "
                    f"(MAX_QUEUE_SECONDS); try again shortly",
                    "MAX_QUEUE_SECONDS",
                ) from None
            try:
                if worker is None or not worker.alive():
                    if worker is not None:
                        self._retire(worker)
                    worker = _Worker(self)
                    with self._lock:
                        self._all.add(worker)
                answer = worker.call(source, policy, self.limits, body, self.wall_seconds)
            finally:
                if worker is not None and not worker.is_alive():
                    self._retire(worker)
                    worker = None
                self._idle.put(worker)
        finally:
            with self._lock:
                self._waiting -= 1
        return self._result(source, answer)

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def _result(self, source: str, answer: tuple[Any, ...]) -> bytes:
        kind = answer[0]
        if kind == "ok":
            data: bytes = answer[1]
            return data
        if kind == "scenario":
            raise ScenarioError(answer[1], answer[2], answer[3])
        if kind == "limit":
            name, message = answer[1], answer[2]
            log.info("run stopped by %s: %s", name, message)
            raise RunLimit(f"{message} (limit {name})" if name not in message else message, name)
        message, line, statement, tb = answer[1:]
        log.error("the simulator failed on a scenario: %s\n%s\nsource:\n%s", message, tb, source)
        raise EngineFailure(message, line, statement, tb)

    def close(self) -> None:
        """Kill every worker (the app's shutdown)."""
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.kill()


_shared: Guard | None = None
_shared_lock = threading.Lock()


def shared_guard() -> Guard:
    """The process's one Guard: apps made in the same process share its workers."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Guard()
        return _shared
