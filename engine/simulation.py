"""The simulated Linux 6.18 kernel as a scenario backend, and a whole run.

Ours: `Simulation` implements engine.backend.Backend by running each call
through the modelled kernel functions, one inner step after another.
`run_source()` parses a scenario, runs it, and keeps for every statement
its outcome and the range of inner steps it took.
"""

from __future__ import annotations

import contextlib
import gc
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from engine import fork, madvise, mmap, mprotect, mremap, pin
from engine.backend import CallResult
from engine.errors import SyscallError
from engine.kernel import Kernel
from engine.limits import LimitExceeded, Limits
from engine.memory import handle_mm_fault
from engine.mm_types import State
from engine.mremap import POLICIES
from engine.procfs import proc_maps, resident_pages
from engine.scenario import ast
from engine.scenario.constants import PAGE_SIZE
from engine.scenario.errors import ScenarioError
from engine.scenario.interpret import StepOutcome, run, step_record
from engine.scenario.machine import TestMachine, Verdict
from engine.scenario.parse import parse
from engine.trace import Step

Handler = Callable[[Kernel, str, list[int]], int]


def _returns_zero(call: Callable[..., None]) -> Handler:
    """A handler for a call that returns 0 on success."""

    def handler(k: Kernel, process: str, args: list[int]) -> int:
        call(k, process, *args)
        return 0

    return handler


SYSCALLS: dict[str, tuple[str, Handler]] = {
    "mmap": ("mm/mmap.c:do_mmap", lambda k, p, a: mmap.do_mmap(k, p, *a)),
    "munmap": ("mm/vma.c:do_vmi_munmap", _returns_zero(mmap.do_vmi_munmap)),
    "mprotect": ("mm/mprotect.c:do_mprotect_pkey", _returns_zero(mprotect.do_mprotect)),
    "madvise": ("mm/madvise.c:do_madvise", _returns_zero(madvise.do_madvise)),
    "mremap": ("mm/mremap.c:do_mremap", lambda k, p, a: mremap.do_mremap(k, p, *a)),
    "pin": ("mm/gup.c:pin_user_pages", _returns_zero(pin.pin_user_pages)),
    "unpin": ("mm/gup.c:unpin_user_pages", _returns_zero(pin.unpin_user_pages)),
    "gup_fast_pin": ("mm/gup.c:gup_fast", _returns_zero(pin.arm_gup_fast_race)),
    "swapout": ("mm/vmscan.c:shrink_folio_list", _returns_zero(madvise.swap_out)),
    "migrate_entry": (
        "mm/migrate.c:migrate_pages",
        _returns_zero(madvise.install_migration_entries),
    ),
}


class Simulation:
    """A Backend whose kernel is the model: every call becomes inner steps."""

    def __init__(self, limits: Limits | None = None, policy: str = "posted") -> None:
        self.kernel = Kernel(limits, policy)

    def _begin(self, summary: str) -> None:
        k = self.kernel
        k.statement += 1
        k.step("(statement)", summary)

    def syscall(self, process: str, name: str, args: list[int]) -> CallResult:
        k = self.kernel
        self._begin(f"{process}: {name}()")
        if name == "memset":
            return self._memset(process, args[0], args[2])
        function, handler = SYSCALLS[name]
        try:
            with k.lock(f"mmap_lock (write) of {process}"):
                value = handler(k, process, args)
        except SyscallError as err:
            k.event(function.split(":")[1], f"returns -{err.errno}: {err.why}", errno=err.errno)
            k.step(function, f"fails with {err.errno}")
            return CallResult(err.errno, -1)
        k.step(function, f"returns {value:#x}" if value else "returns 0")
        return CallResult("ok", value)

    def fork(self, parent: str, child: str) -> CallResult:
        k = self.kernel
        self._begin(f"{parent}: fork() -> {child}")
        if len(k.state.processes) >= k.limits.max_processes:
            raise LimitExceeded("max_processes", k.limits.max_processes, len(k.state.processes) + 1)
        pid = fork.dup_mmap(k, parent, child)
        return CallResult("ok", pid)

    def store(self, process: str, addr: int, value: int) -> CallResult:
        self._begin(f"{process}: store at {addr:#x}")
        return self._fault(process, addr, addr + 1, write=True)

    def load(self, process: str, addr: int) -> CallResult:
        self._begin(f"{process}: load at {addr:#x}")
        return self._fault(process, addr, addr + 1, write=False)

    def _memset(self, process: str, addr: int, length: int) -> CallResult:
        if not length:
            self.kernel.step("(memset)", "nothing to write")
            return CallResult("ok", 0)
        result = self._fault(process, addr, addr + length, write=True)
        return CallResult(result.result, 0 if result.result == "ok" else None)

    def _fault(self, process: str, start: int, end: int, write: bool) -> CallResult:
        """Touch every page of [start, end) in order, as the CPU would."""
        k = self.kernel
        from engine.vma import find_vma

        addr = start & ~(PAGE_SIZE - 1)
        end = min(end, 1 << 64)
        with k.lock(f"mmap_lock (read) of {process}"):
            while addr < end:
                vma = find_vma(k.state, process, addr)
                if vma is None or vma.vm_start > addr:
                    chunk_end = addr + PAGE_SIZE
                else:
                    chunk_end = min(end, vma.vm_end) if vma.shmem is None else addr + PAGE_SIZE
                if chunk_end - addr > PAGE_SIZE and vma is not None and vma.shmem is None:
                    result = _fault_vma_range(k, process, addr, chunk_end, write)
                else:
                    result = handle_mm_fault(k, process, addr, write)
                if result != "ok":
                    k.step("mm/memory.c:handle_mm_fault", f"{result} at {addr:#x}")
                    return CallResult(result, None)
                addr = chunk_end
            kind = "write" if write else "read"
            k.step("mm/memory.c:handle_mm_fault", f"{kind} faults over {start:#x}-{end:#x}")
        return CallResult("ok", None)

    def maps(self) -> dict[str, list[str]]:
        return proc_maps(self.kernel.state)

    def procmap_query(self, process: str, addr: int) -> tuple[int, int] | None:
        """Models fs/proc/task_mmu.c:do_procmap_query() without flags: vma_lookup()."""
        from engine.vma import vma_lookup

        vma = vma_lookup(self.kernel.state, process, addr)
        return None if vma is None else (vma.vm_start, vma.vm_end)

    def resident(self) -> dict[str, dict[str, int]]:
        return resident_pages(self.kernel.state)


def _fault_vma_range(k: Kernel, process: str, start: int, end: int, write: bool) -> str:
    """A run of pages inside one private VMA: one access check, then the batch."""
    from engine.memory import access_allowed, fault_anon_range
    from engine.vma import find_vma

    vma = find_vma(k.state, process, start)
    assert vma is not None
    if not access_allowed(vma, write):
        return handle_mm_fault(k, process, start, write)
    return fault_anon_range(k, vma, start, end, write)


@dataclass
class StatementRun:
    """One statement's outcome and its inner steps kernel.steps[first:last]."""

    outcome: StepOutcome
    first: int
    last: int
    maps: dict[str, list[str]]

    def record(self) -> dict[str, object]:
        """The statement's entry in the CLI's JSON contract."""
        entry = step_record(self.outcome)
        entry["maps"] = self.maps
        return entry


@dataclass
class Run:
    """A whole scenario run: its statements, its inner steps, how it ended.

    `error` is set when the scenario stopped early (a limit, a division by
    zero): the statements before it still stand.
    """

    scenario: ast.Scenario
    statements: list[StatementRun] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    error: str | None = None
    test: str | None = None
    verdict: Verdict | None = None

    def state_at(self, step: int) -> State:
        """The snapshot after inner step `step`."""
        return self.steps[step].state


def run_scenario(
    scenario: ast.Scenario, limits: Limits | None = None, policy: str = "posted"
) -> Run:
    """Run a parsed scenario on the model, keeping every inner step."""
    sim = Simulation(limits, policy)
    result = Run(scenario, steps=sim.kernel.steps)
    _record(sim, run(scenario, sim), result)
    return result


def run_test(
    harness: ast.HarnessFile,
    test: ast.HarnessTest,
    limits: Limits | None = None,
    policy: str = "posted",
) -> Run:
    """Run one test of a harness file on a fresh model, as the harness forks one per test."""
    sim = Simulation(limits, policy)
    machine = TestMachine(harness, test, sim)
    result = Run(ast.Scenario((), ("main",)), steps=sim.kernel.steps, test=test.name)
    _record(sim, machine.run(), result)
    result.scenario = ast.Scenario(
        tuple(s.outcome.statement for s in result.statements), tuple(machine.processes)
    )
    result.verdict = machine.verdict or Verdict(
        "fail", result.error, machine.passed, machine.failed
    )
    return result


def _record(sim: Simulation, outcomes: Iterator[StepOutcome], result: Run) -> None:
    """Keep each outcome with its inner steps and the maps after it."""
    first = 0
    with _cyclic_gc_paused():
        try:
            for outcome in outcomes:
                last = len(sim.kernel.steps)
                result.statements.append(StatementRun(outcome, first, last, sim.maps()))
                first = last
        except (LimitExceeded, ScenarioError) as err:
            result.error = str(err)


_gc_lock = threading.Lock()
_gc_pausers = 0


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a run allocates.

    A large run makes millions of small acyclic objects (folios, page-table
    entries); each full collection would scan them all again, which made a
    relocating 256 MiB move 40% slower. Reference counting still frees
    everything; collection resumes when the last concurrent run ends.
    """
    global _gc_pausers
    with _gc_lock:
        _gc_pausers += 1
        if _gc_pausers == 1:
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0:
                gc.enable()


_POLICY = re.compile(r"^\s*//\s*@policy\s+(\w+)", re.MULTILINE)


def policy_of(source: str) -> str:
    """The RELOCATE_ANON policy a scenario asks for with `// @policy NAME`."""
    match = _POLICY.search(source)
    return match.group(1) if match and match.group(1) in POLICIES else "posted"


def run_source(source: str, limits: Limits | None = None, policy: str | None = None) -> Run:
    """Parse and run scenario text; a parse error raises ScenarioError.

    The policy is `policy`, else the source's `// @policy NAME` line, else
    "posted" (the series' code as posted).
    """
    return run_scenario(parse(source), limits, policy or policy_of(source))
