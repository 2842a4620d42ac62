"""The simulated Linux 6.18 kernel as a scenario backend, and a whole run.

Ours: `Simulation` implements engine.sim.backend.Backend by running each call
through the modelled kernel functions, one inner step after another.
`run_source()` parses a scenario, runs it, and keeps for every statement
its outcome and the range of inner steps it took.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from engine import fork, gup, madvise, mmap, mprotect, mremap
from engine.cow_context import PROPOSAL
from engine.memory import access_allowed, fault_anon_range, handle_mm_fault
from engine.mm_constants import PAGE_SHIFT, PAGE_SIZE
from engine.mm_types import Folio, RmapModel, State
from engine.pagetable import PRESENT, ZERO_PAGE, PageTableEditor, PteRun
from engine.procfs import all_pages, page_tables, proc_maps, resident_pages
from engine.scenario import ast, directives
from engine.scenario.errors import ScenarioError
from engine.scenario.harness import is_harness, parse_harness
from engine.scenario.interpret import StepOutcome, run, step_record
from engine.scenario.machine import TestMachine, Verdict
from engine.scenario.parse import parse
from engine.sim.backend import CallResult, ProcessPages, ProcessTables
from engine.sim.errors import SyscallError
from engine.sim.kernel import Kernel
from engine.sim.limits import LimitExceeded, Limits
from engine.sim.policy import POLICIES
from engine.sim.trace import Lock, ObjRef, Step
from engine.vma import find_vma, vma_lookup

Handler = Callable[[Kernel, str, list[int]], int]


def _returns_zero(call: Callable[..., None]) -> Handler:
    """A handler for a call that returns 0 on success."""

    def handler(k: Kernel, process: str, args: list[int]) -> int:
        call(k, process, *args)
        return 0

    return handler


class Syscall(NamedTuple):
    """The kernel function a system call enters, in its file, and its handler."""

    file: str
    function: str
    handler: Handler

    @property
    def label(self) -> str:
        """The step label: "mm/mmap.c:do_mmap"."""
        return f"{self.file}:{self.function}"


SYSCALLS: dict[str, Syscall] = {
    "mmap": Syscall("mm/mmap.c", "do_mmap", lambda k, p, a: mmap.do_mmap(k, p, *a)),
    "munmap": Syscall("mm/vma.c", "do_vmi_munmap", _returns_zero(mmap.do_vmi_munmap)),
    "mprotect": Syscall("mm/mprotect.c", "do_mprotect_pkey", _returns_zero(mprotect.do_mprotect)),
    "madvise": Syscall("mm/madvise.c", "do_madvise", _returns_zero(madvise.do_madvise)),
    "mremap": Syscall("mm/mremap.c", "do_mremap", lambda k, p, a: mremap.do_mremap(k, p, *a)),
    "pin": Syscall("mm/gup.c", "pin_user_pages", _returns_zero(gup.pin_user_pages)),
    "unpin": Syscall("mm/gup.c", "unpin_user_pages", _returns_zero(gup.unpin_user_pages)),
    "gup_fast_pin": Syscall("mm/gup.c", "gup_fast", _returns_zero(gup.arm_gup_fast_race)),
    "swapout": Syscall("mm/vmscan.c", "shrink_folio_list", _returns_zero(madvise.swap_out)),
    "migrate_entry": Syscall(
        "mm/migrate.c", "migrate_pages", _returns_zero(madvise.install_migration_entries)
    ),
}


class Simulation:
    """A Backend whose kernel is the model: every call becomes inner steps.

    `rmap_model` is the reverse map the kernel keeps: "anon_vma" (Linux
    6.18) or "cow_context" (the proposal: engine.cow_context).
    """

    def __init__(
        self,
        limits: Limits | None = None,
        policy: str = "posted",
        rmap_model: RmapModel = "anon_vma",
    ) -> None:
        self.kernel = Kernel(limits, POLICIES[policy], rmap_model=rmap_model)

    def _begin(self, summary: str) -> None:
        k = self.kernel
        k.statement += 1
        k.step("(statement)", summary)

    def syscall(self, process: str, name: str, args: list[int]) -> CallResult:
        k = self.kernel
        self._begin(f"{process}: {name}()")
        if process not in k.state.processes:
            return self._exited(process)
        if name == "memset":
            return self._memset(process, args[0], args[1], args[2])
        if name == "exit":
            mmap.exit_mmap(k, process)
            k.step("kernel/exit.c:do_exit", f"{process} exits")
            return CallResult("ok", None)
        call = SYSCALLS[name]
        try:
            with k.lock(Lock.mmap(process, "write")):
                value = call.handler(k, process, args)
        except SyscallError as err:
            k.event(call.function, f"returns -{err.errno}: {err.why}", errno=err.errno)
            k.step(call.label, f"fails with {err.errno}")
            return CallResult(err.errno, -1)
        k.step(call.label, f"returns {value:#x}" if value else "returns 0")
        return CallResult("ok", value)

    def fork(self, parent: str, child: str) -> CallResult:
        k = self.kernel
        self._begin(f"{parent}: fork() -> {child}")
        if parent not in k.state.processes:
            return self._exited(parent)
        if len(k.state.processes) >= k.limits.max_processes:
            raise LimitExceeded("max_processes", k.limits.max_processes, len(k.state.processes) + 1)
        pid = fork.dup_mmap(k, parent, child)
        return CallResult("ok", pid)

    def store(self, process: str, addr: int, value: int) -> CallResult:
        self._begin(f"{process}: store at {addr:#x}")
        if process not in self.kernel.state.processes:
            return self._exited(process)
        return self._fault(process, addr, addr + 1, write=True, value=value)

    def load(self, process: str, addr: int) -> CallResult:
        self._begin(f"{process}: load at {addr:#x}")
        if process not in self.kernel.state.processes:
            return self._exited(process)
        return self._fault(process, addr, addr + 1, write=False)

    def _exited(self, process: str) -> CallResult:
        """A statement of a process that called exit(): it runs no more (ours:
        ESRCH, as kill() would answer for it)."""
        k = self.kernel
        k.event("(statement)", f"{process} has exited: it makes no more calls")
        k.step("(statement)", f"{process} has exited")
        return CallResult("ESRCH", None)

    def _memset(self, process: str, addr: int, value: int, length: int) -> CallResult:
        if not length:
            self.kernel.step("(memset)", "nothing to write")
            return CallResult("ok", 0)
        result = self._fault(process, addr, addr + length, write=True, value=value & 0xFF)
        return CallResult(result.result, 0 if result.result == "ok" else None)

    def _fault(
        self, process: str, start: int, end: int, write: bool, value: int | None = None
    ) -> CallResult:
        """Touch every page of [start, end) in order, as the CPU would; a
        write stores `value` in each byte it reaches."""
        k = self.kernel
        addr = start & ~(PAGE_SIZE - 1)
        end = min(end, 1 << 64)
        with k.lock(Lock.mmap(process, "read")):
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
                    if value is not None:
                        _store_data(k, process, start, max(start, addr), value)
                    k.step("mm/memory.c:handle_mm_fault", f"{result} at {addr:#x}")
                    return CallResult(result, None)
                addr = chunk_end
            if value is not None:
                _store_data(k, process, start, end, value)
            kind = "write" if write else "read"
            k.step("mm/memory.c:handle_mm_fault", f"{kind} faults over {start:#x}-{end:#x}")
        return CallResult("ok", None)

    def maps(self) -> dict[str, list[str]]:
        return proc_maps(self.kernel.state)

    def procmap_query(self, process: str, addr: int) -> tuple[int, int] | None:
        """Models fs/proc/task_mmu.c:do_procmap_query() without flags: vma_lookup()."""
        vma = vma_lookup(self.kernel.state, process, addr)
        return None if vma is None else (vma.vm_start, vma.vm_end)

    def resident(self) -> dict[str, dict[str, int]]:
        return resident_pages(self.kernel.state)

    def pages(self) -> dict[str, ProcessPages]:
        return all_pages(self.kernel.state)

    def page_tables(self) -> dict[str, ProcessTables]:
        return page_tables(self.kernel.state)


def _fault_vma_range(k: Kernel, process: str, start: int, end: int, write: bool) -> str:
    """A run of pages inside one private VMA: one access check, then the batch."""
    vma = find_vma(k.state, process, start)
    assert vma is not None
    if not access_allowed(vma, write):
        return handle_mm_fault(k, process, start, write)
    return fault_anon_range(k, vma, start, end, write)


def _store_data(k: Kernel, process: str, start: int, end: int, value: int) -> None:
    """What storing `value` over [start, end) leaves for the kernel to see:
    which pages of large folios hold a byte that is not zero (Folio.data).
    A nonzero value marks every page it reaches; zero clears only the pages
    it covers whole (a zero stored inside a page is taken not to have been
    that page's last nonzero byte). An empty range (a store whose first
    byte faulted) marks nothing."""
    if end <= start:
        return
    pt = k.pt(process)
    changed: dict[int, Folio] = {}
    first, last = start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT
    vpn = first
    while vpn <= last:
        # A PTE table of folios all in FolioRuns maps only small folios.
        table_end = min(last + 1, ((vpn >> 9) + 1) << 9)
        leaf = pt.leaf(vpn >> 9)
        if isinstance(leaf, PteRun) and (
            k.state.folios.runs_over(leaf.first, leaf.first + len(leaf)) is not None
        ):
            vpn = table_end
            continue
        for page in range(vpn, table_end):
            _store_page_data(k, pt, changed, page, start, end, value)
        vpn = table_end
    k.put_folios(list(changed.values()))


def _store_page_data(
    k: Kernel,
    pt: PageTableEditor,
    changed: dict[int, Folio],
    vpn: int,
    start: int,
    end: int,
    value: int,
) -> None:
    """_store_data() of one page: its large folio's bit in Folio.data."""
    pte = pt.get(vpn)
    if pte is None or pte.kind != PRESENT or pte.folio == ZERO_PAGE:
        return
    folio = changed.get(pte.folio) or k.folio(pte.folio)
    if not folio.order:
        return
    bit = 1 << pte.page
    if value:
        data = folio.data | bit
    elif start <= vpn << PAGE_SHIFT and (vpn + 1) << PAGE_SHIFT <= end:
        data = folio.data & ~bit
    else:
        return
    if data != folio.data:
        changed[folio.id] = folio._replace(data=data)


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


View = Literal["step", "before", "after"]
"""How to look at an inner step: the state after it, or its statement's before or after."""


@dataclass(frozen=True)
class Changes:
    """The objects a step, or a whole statement, created, changed and freed."""

    created: tuple[ObjRef, ...] = ()
    changed: tuple[ObjRef, ...] = ()
    freed: tuple[ObjRef, ...] = ()

    @classmethod
    def of_step(cls, step: Step) -> Changes:
        return cls(tuple(step.created), tuple(step.changed), tuple(step.freed))

    @classmethod
    def of_steps(cls, steps: Iterable[Step]) -> Changes:
        """What the steps did together: an object created then changed is created,
        one freed at the end is only freed."""
        created: dict[ObjRef, None] = {}
        changed: dict[ObjRef, None] = {}
        freed: dict[ObjRef, None] = {}
        for step in steps:
            created.update(dict.fromkeys(step.created))
            changed.update(dict.fromkeys(r for r in step.changed if r not in created))
            freed.update(dict.fromkeys(step.freed))
        return cls(
            tuple(r for r in created if r not in freed),
            tuple(r for r in changed if r not in freed),
            tuple(freed),
        )

    def of(self, ref: ObjRef) -> Literal["", "created", "changed"]:
        """How the object `ref` fared: created, changed, or neither."""
        if ref in self.created:
            return "created"
        if ref in self.changed:
            return "changed"
        return ""


@dataclass(frozen=True)
class Shown:
    """What a view of an inner step shows: a state, the state it started from
    (None for a statement's before), the locks held in it, and what changed."""

    state: State
    before: State | None
    held: tuple[Lock, ...]
    changes: Changes


@dataclass(frozen=True)
class Neighbours:
    """The inner steps one steps to from a step; None where there is none."""

    first: int | None
    prev: int | None
    next: int | None
    last: int | None
    prev_statement: int | None
    next_statement: int | None


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
    rmap_model: RmapModel = "anon_vma"
    policy: str = "posted"
    """The RELOCATE_ANON policy the run took (engine.sim.policy)."""

    def state_at(self, step: int) -> State:
        """The snapshot after inner step `step`."""
        return self.steps[step].state

    def clamp(self, step: int) -> int:
        """`step` moved into the run's range of inner steps."""
        return max(0, min(step, len(self.steps) - 1))

    def statement_of(self, step: int) -> int:
        """The index of the statement whose inner steps include `step`."""
        # By the statements' ranges, not the kernel's count of calls: a harness
        # test's assertions and assignments are statements that make no call.
        lasts = [st.last for st in self.statements]
        return min(bisect.bisect_right(lasts, step), len(self.statements) - 1)

    def statement_steps(self, i: int) -> list[Step]:
        """Statement i's inner steps."""
        st = self.statements[i]
        return self.steps[st.first : st.last]

    def statement_states(self, i: int) -> tuple[State, State]:
        """Statement i's state before it (its first step) and after it (its last).

        A statement that took no steps (an assignment like `q = p + 4096;`)
        has the state the previous statement left.
        """
        st = self.statements[i]
        if st.first < st.last:
            return self.steps[st.first].state, self.steps[st.last - 1].state
        before = (
            self.steps[st.first - 1].state
            if st.first > 0
            else Kernel(rmap_model=self.rmap_model).state
        )
        return before, before

    def shown(self, step: int, view: View = "step") -> Shown:
        """Inner step `step` as `view` shows it: the state after the step and what
        the step did, or the state before or after its whole statement."""
        if view == "step":
            here = self.steps[step]
            previous = self.steps[step - 1].state if step else None
            return Shown(here.state, previous, here.held, Changes.of_step(here))
        st = self.statements[self.statement_of(step)]
        if view == "before":
            return Shown(self.steps[st.first].state, None, self.steps[st.first].held, Changes())
        return Shown(
            self.steps[st.last - 1].state,
            self.steps[st.first].state,
            self.steps[st.last - 1].held,
            Changes.of_steps(self.steps[st.first : st.last]),
        )

    def neighbours(self, step: int) -> Neighbours:
        """The first, previous, next and last inner steps, and the first steps of
        the statements before and after this one."""
        last = len(self.steps) - 1
        s = self.statement_of(step)
        return Neighbours(
            first=0 if step > 0 else None,
            prev=step - 1 if step > 0 else None,
            next=step + 1 if step < last else None,
            last=last if step < last else None,
            prev_statement=self.statements[s - 1].first if s > 0 else None,
            next_statement=(self.statements[s + 1].first if s + 1 < len(self.statements) else None),
        )


def run_scenario(
    scenario: ast.Scenario,
    limits: Limits | None = None,
    policy: str | None = None,
    rmap_model: RmapModel | None = None,
) -> Run:
    """Run a parsed scenario on the model, keeping every inner step.

    The RELOCATE_ANON policy is `policy`, else the scenario's `// @policy`
    line, else "posted" (the series' code as posted); the rmap model is
    `rmap_model`, else its `// @rmap` line, else "anon_vma".
    """
    policy, rmap_model = directives.chosen(scenario, policy, rmap_model)
    sim = Simulation(limits, policy, rmap_model)
    result = Run(scenario, steps=sim.kernel.steps, rmap_model=rmap_model, policy=policy)
    _record(sim, run(scenario, sim), result)
    return result


def run_test(
    harness: ast.HarnessFile,
    test: ast.HarnessTest,
    limits: Limits | None = None,
    policy: str | None = None,
    rmap_model: RmapModel | None = None,
) -> Run:
    """Run one test of a harness file on a fresh model, as the harness forks
    one per test; the policy and rmap model are chosen as run_scenario() does."""
    policy, rmap_model = directives.chosen(harness, policy, rmap_model)
    sim = Simulation(limits, policy, rmap_model)
    machine = TestMachine(harness, test, sim)
    result = Run(
        ast.Scenario((), ("main",)),
        steps=sim.kernel.steps,
        test=test.name,
        rmap_model=rmap_model,
        policy=policy,
    )
    _record(sim, machine.run(), result)
    result.scenario = ast.Scenario(
        tuple(s.outcome.statement for s in result.statements), tuple(machine.processes)
    )
    result.verdict = machine.verdict or Verdict(
        "fail", result.error, machine.passed, machine.failed
    )
    return result


@dataclass
class Suite:
    """Every test of a harness file, each run on its own fresh model, in file order."""

    harness: ast.HarnessFile
    runs: list[Run]

    def find(self, wanted: str) -> Run | None:
        """A test's run by its full name (merge.ksm_merge) or its own (ksm_merge)."""
        for test, ran in zip(self.harness.tests, self.runs, strict=True):
            if test.answers_to(wanted):
                return ran
        return None


def run_harness(
    harness: ast.HarnessFile,
    limits: Limits | None = None,
    policy: str | None = None,
    rmap_model: RmapModel | None = None,
) -> Suite:
    """Run every test of a harness file, as the kselftest harness does; the
    policy and rmap model are chosen as run_scenario() does."""
    return Suite(
        harness, [run_test(harness, test, limits, policy, rmap_model) for test in harness.tests]
    )


def _record(sim: Simulation, outcomes: Iterator[StepOutcome], result: Run) -> None:
    """Keep each outcome with its inner steps and the maps after it."""
    first = 0
    with cyclic_gc_paused():
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
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cycle collector while a run allocates (or its trace is
    checked and encoded: engine.present.report).

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


def run_source(
    source: str,
    limits: Limits | None = None,
    policy: str | None = None,
    rmap_model: RmapModel | None = None,
) -> Run:
    """Parse and run scenario text (policy and rmap model chosen as
    run_scenario() does); a parse error raises ScenarioError."""
    return run_scenario(parse(source), limits, policy, rmap_model)


def run_text(
    source: str,
    limits: Limits | None = None,
    policy: str | None = None,
    rmap_model: RmapModel | None = None,
) -> Run | Suite:
    """Parse and run what was pasted: a scenario's Run, or a harness file's Suite
    (engine.scenario.harness.is_harness tells them apart); a parse error raises
    ScenarioError. The policy and rmap model are chosen as run_scenario() does."""
    if is_harness(source):
        return run_harness(parse_harness(source), limits, policy, rmap_model)
    return run_source(source, limits, policy, rmap_model)


def rmap_model_note(model: RmapModel) -> str | None:
    """What a reader must be told of a run's rmap model: None for Linux 6.18."""
    return None if model == "anon_vma" else f"rmap model cow_context: {PROPOSAL}"
