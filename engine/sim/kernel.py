"""The simulated kernel's working state and its inner-step recorder.

Ours: the kernel keeps its objects in memory and changes them in place;
here every change replaces an immutable value in the current State, and
`step()` closes an inner step by keeping that State, so each step is a
snapshot that shares everything unchanged with the one before.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from immutables import Map

from engine import cow_context
from engine.mm_types import (
    MM,
    VMA,
    AnonVMA,
    CowContext,
    Folio,
    FolioRun,
    RmapModel,
    ShmemObject,
    State,
)
from engine.pagetable import PageTable, PageTableEditor
from engine.sim.limits import LimitExceeded, Limits
from engine.sim.policy import POSTED, Policy
from engine.sim.profile import DEFAULT, MachineProfile
from engine.sim.trace import Event, Lock, ObjRef, Refs, Rule, Step, Unfinished


class Held:
    """A lock held for a `with` block (a plain class: the walk takes one per
    folio, and a generator-based context manager costs several times more).

    Besides the locks held now, the kernel notes every lock taken since the
    last step, so a step lists the locks its work ran under even when they
    were dropped before it closed (vma_complete() drops the anon_vma lock).
    """

    __slots__ = ("_locks", "_taken", "_acquired", "_lock")

    def __init__(
        self,
        locks: list[Lock],
        taken: dict[Lock, None],
        acquired: list[tuple[tuple[Lock, ...], Lock]],
        lock: Lock,
    ) -> None:
        self._locks = locks
        self._taken = taken
        self._acquired = acquired
        self._lock = lock

    def __enter__(self) -> None:
        self._acquired.append((tuple(self._locks), self._lock))
        self._locks.append(self._lock)
        self._taken[self._lock] = None

    def __exit__(self, *exc: object) -> None:
        self._locks.remove(self._lock)


class Dropped:
    """A held lock released for a `with` block and taken again after it
    (relocate_anon_pte() drops the PTE lock around split_folio())."""

    __slots__ = ("_held",)

    def __init__(self, held: Held) -> None:
        self._held = held

    def __enter__(self) -> None:
        self._held.__exit__()

    def __exit__(self, *exc: object) -> None:
        self._held.__enter__()


class Touched:
    """The objects created (or changed, or freed) since the last step, in
    order: ObjRefs, and ranges of folio ids a FolioRun brought or changed
    together (`ranges` keeps those sorted, to find an id in them)."""

    __slots__ = ("order", "ranges")

    def __init__(self) -> None:
        self.order: dict[ObjRef | range, None] = {}
        self.ranges: list[range] = []

    def add_range(self, ids: range) -> None:
        self.order[ids] = None
        bisect.insort(self.ranges, ids, key=lambda r: r.start)

    def range_holding(self, ident: int) -> range | None:
        i = bisect.bisect_right(self.ranges, ident, key=lambda r: r.start) - 1
        if i >= 0 and ident in self.ranges[i]:
            return self.ranges[i]
        return None

    def take_from_range(self, ids: range, ident: int) -> None:
        """Folio `ident` leaves the range it came or changed in."""
        pieces = [r for r in (range(ids.start, ident), range(ident + 1, ids.stop)) if r]
        self.ranges.remove(ids)
        for piece in pieces:
            bisect.insort(self.ranges, piece, key=lambda r: r.start)
        order: dict[ObjRef | range, None] = {}
        for item in self.order:
            if item is ids:
                order.update(dict.fromkeys(pieces))
            else:
                order[item] = None
        self.order = order

    def __contains__(self, ref: ObjRef) -> bool:
        if ref in self.order:
            return True
        return ref.kind == "folio" and bool(self.ranges) and self.range_holding(ref.id) is not None

    def refs(self) -> Refs:
        return Refs(tuple(self.order))


@dataclass(frozen=True)
class GupRace:
    """An injected GUP-fast pin: on page `addr` of `mm`, at moment `when`."""

    mm: str
    addr: int
    when: int


class Kernel:
    """The current state of the simulated machine, and its trace of steps.

    `policy` selects how the RELOCATE_ANON walk behaves where the posted
    code and its review differ (engine.sim.policy); `profile` the host
    settings the modelled kernel runs with (engine.sim.profile);
    `rmap_model` the reverse map it keeps (engine.mm_types.RmapModel).
    """

    def __init__(
        self,
        limits: Limits | None = None,
        policy: Policy = POSTED,
        profile: MachineProfile = DEFAULT,
        rmap_model: RmapModel = "anon_vma",
    ) -> None:
        self.limits = limits or Limits()
        self.profile = profile
        self.policy = policy
        self.gup_race: GupRace | None = None
        self.state = State(processes=Map({"main": MM("main", 1)}), rmap_model=rmap_model)
        self.steps: list[Step] = []
        self.statement = -1
        self._locks: list[Lock] = []
        self._taken: dict[Lock, None] = {}
        self._acquired: list[tuple[tuple[Lock, ...], Lock]] = []
        self._editors: dict[str, PageTableEditor] = {}
        self._created = Touched()
        self._changed = Touched()
        self._freed: dict[ObjRef, None] = {}
        self._events: list[Event] = []
        self._warnings: list[str] = []
        self._last = self.state
        if rmap_model == "cow_context":
            cow_context.mm_init_cow_context(self, "main")

    # --- object access ---------------------------------------------------

    def new_id(self) -> int:
        """A fresh object id (ids are never reused, like addresses in a trace)."""
        ident = self.state.next_id
        self.state = self.state._replace(next_id=ident + 1)
        return ident

    def new_ids(self, count: int) -> range:
        """`count` fresh ids at once (a fault over a large range)."""
        first = self.state.next_id
        self.state = self.state._replace(next_id=first + count)
        return range(first, first + count)

    def alloc_pid(self) -> int:
        """alloc_pid() (kernel/pid.c): the next pid. Its idr allocates
        cyclically, so an exited process's pid does not come back."""
        pid = self.state.last_pid + 1
        self.state = self.state._replace(last_pid=pid)
        return pid

    def vma(self, ident: int) -> VMA:
        return self.state.vmas[ident]

    def anon_vma(self, ident: int) -> AnonVMA:
        return self.state.anon_vmas[ident]

    def folio(self, ident: int) -> Folio:
        return self.state.folios[ident]

    def mm(self, name: str) -> MM:
        return self.state.processes[name]

    def _touch(self, ref: ObjRef, existed: bool) -> None:
        if ref in self._freed:
            del self._freed[ref]
            self._changed.order[ref] = None
        elif not existed:
            self._created.order[ref] = None
        elif ref not in self._created and ref not in self._changed:
            self._changed.order[ref] = None

    def _free(self, ref: ObjRef) -> None:
        if ref in self._created.order:
            del self._created.order[ref]
            return
        if ref.kind == "folio" and self._created.ranges:
            ids = self._created.range_holding(ref.id)
            if ids is not None:
                self._created.take_from_range(ids, ref.id)
                return
        self._changed.order.pop(ref, None)
        if ref.kind == "folio" and self._changed.ranges:
            ids = self._changed.range_holding(ref.id)
            if ids is not None:
                self._changed.take_from_range(ids, ref.id)
        self._freed[ref] = None

    def put_vma(self, vma: VMA) -> VMA:
        self._touch(ObjRef("vma", vma.id), vma.id in self._last.vmas)
        self.state = self.state._replace(vmas=self.state.vmas.set(vma.id, vma))
        return vma

    def free_vma(self, ident: int) -> None:
        self._free(ObjRef("vma", ident))
        self.state = self.state._replace(vmas=self.state.vmas.delete(ident))

    def put_anon_vma(self, av: AnonVMA) -> AnonVMA:
        self._touch(ObjRef("anon_vma", av.id), av.id in self._last.anon_vmas)
        self.state = self.state._replace(anon_vmas=self.state.anon_vmas.set(av.id, av))
        return av

    def free_anon_vma(self, ident: int) -> None:
        self._free(ObjRef("anon_vma", ident))
        self.state = self.state._replace(anon_vmas=self.state.anon_vmas.delete(ident))

    def put_folio(self, folio: Folio) -> Folio:
        if self.state.rmap_model == "cow_context":
            cow_context.folio_references(self, [folio])
        self._touch(ObjRef("folio", folio.id), folio.id in self._last.folios)
        self.state = self.state._replace(folios=self.state.folios.set(folio.id, folio))
        return folio

    def put_folios(self, folios: list[Folio]) -> None:
        """Store many folios at once (a fault over a large range)."""
        if self.state.rmap_model == "cow_context":
            cow_context.folio_references(self, folios)
        for folio in folios:
            self._touch(ObjRef("folio", folio.id), folio.id in self._last.folios)
        self.state = self.state._replace(folios=self.state.folios.set_many(folios))

    def put_folio_runs(self, runs: list[FolioRun]) -> None:
        """Store runs of new folios (fresh ids), each as one range. Under the
        COW-context model each folio takes a reference on its context
        (cow_context.folio_references): there they are stored one by one."""
        if self.state.rmap_model == "cow_context":
            self.put_folios([run.folio(i) for run in runs for i in range(run.first, run.end)])
            return
        for run in runs:
            self._created.add_range(range(run.first, run.end))
        self.state = self.state._replace(folios=self.state.folios.add_runs(runs))

    def remap_folio_run(self, run: FolioRun, mapping: int, index: int) -> None:
        """folio->mapping and folio->index of every folio of `run` (folios
        the state holds in runs) rewritten at once: index + i for the i-th."""
        ids = range(run.first, run.end)
        seen = [*self._created.ranges, *self._changed.ranges]
        if not any(r.start < ids.stop and ids.start < r.stop for r in seen):
            self._changed.add_range(ids)
        else:  # some came or changed already in this step
            for ident in ids:
                self._touch(ObjRef("folio", ident), True)
        folios = self.state.folios.remap(run.first, run.end, mapping, index)
        self.state = self.state._replace(folios=folios)

    def free_folio(self, ident: int) -> None:
        if self.state.rmap_model == "cow_context":
            cow_context.folio_references(self, [], freed=ident)
        self._free(ObjRef("folio", ident))
        self.state = self.state._replace(folios=self.state.folios.delete(ident))

    def cow_context(self, ident: int) -> CowContext:
        return self.state.cow_contexts[ident]

    def put_cow_context(self, ctx: CowContext) -> CowContext:
        self._touch(ObjRef("cow_context", ctx.id), ctx.id in self._last.cow_contexts)
        self.state = self.state._replace(cow_contexts=self.state.cow_contexts.set(ctx.id, ctx))
        return ctx

    def free_cow_context(self, ident: int) -> None:
        self._free(ObjRef("cow_context", ident))
        self.state = self.state._replace(cow_contexts=self.state.cow_contexts.delete(ident))

    def put_shmem(self, obj: ShmemObject) -> None:
        self.state = self.state._replace(shmem=self.state.shmem.set(obj.id, obj))

    def put_mm(self, mm: MM) -> MM:
        self.state = self.state._replace(processes=self.state.processes.set(mm.name, mm))
        return mm

    def drop_mm(self, name: str) -> None:
        """The mm is gone (its process exited): out of the live processes."""
        self._editors.pop(name, None)
        self.state = self.state._replace(processes=self.state.processes.delete(name))

    def link_vma(self, vma: VMA) -> VMA:
        """vma_link(): store a new VMA and insert it in its mm's tree."""
        self.put_vma(vma)
        mm = self.mm(vma.mm)
        self._reorder(mm, mm.vmas + (vma.id,))
        return vma

    def unlink_vma(self, vma: VMA) -> None:
        """Remove a VMA from its mm's tree and free it (vma_complete)."""
        mm = self.mm(vma.mm)
        self._reorder(mm, tuple(v for v in mm.vmas if v != vma.id))
        self.free_vma(vma.id)

    def sort_vmas(self, mm_name: str) -> None:
        """Keep the mm's VMA order after a VMA's range changed."""
        mm = self.mm(mm_name)
        self._reorder(mm, mm.vmas)

    def _reorder(self, mm: MM, ids: tuple[int, ...]) -> None:
        vmas = self.state.vmas
        self.put_mm(replace(mm, vmas=tuple(sorted(ids, key=lambda i: vmas[i].vm_start))))

    # --- page tables -------------------------------------------------------

    def pt(self, mm_name: str) -> PageTableEditor:
        """The open batch of page-table edits of one mm (committed by step())."""
        editor = self._editors.get(mm_name)
        if editor is None:
            editor = self._editors[mm_name] = self.mm(mm_name).pagetable.edit()
        return editor

    def pagetable(self, mm_name: str) -> PageTable:
        """The mm's page tables with every edit so far applied. An open
        editor (pt()) stays open: its later edits go on from these tables."""
        editor = self._editors.get(mm_name)
        if editor is not None:
            self._install_pagetable(mm_name, editor.commit())
        return self.mm(mm_name).pagetable

    def _commit_pagetable(self, mm_name: str) -> None:
        editor = self._editors.pop(mm_name, None)
        if editor is not None:
            self._install_pagetable(mm_name, editor.commit())

    def _install_pagetable(self, mm_name: str, table: PageTable) -> None:
        if mm_name in self.state.processes:
            mm = self.mm(mm_name)
            self.put_mm(replace(mm, pagetable=table))
            if len(table) > self.limits.max_populated_pages:
                raise LimitExceeded(
                    "max_populated_pages", self.limits.max_populated_pages, len(table)
                )

    # --- locks, decisions and steps ---------------------------------------

    def lock(self, lock: Lock) -> Held:
        """Hold a lock for the steps taken inside the `with` block."""
        return Held(self._locks, self._taken, self._acquired, lock)

    def lock_in_turn(self, lock: Lock) -> None:
        """Take and release a Lock.folios_in_turn() under the locks held now
        (the walk's folio locks over a run of folios): one record for what
        a `with lock()` around nothing, one folio after another, would be."""
        self._acquired.append((tuple(self._locks), lock))
        self._taken[lock] = None

    def dropped(self, lock: Lock) -> Dropped:
        """Release the held lock for a `with` block, then retake it."""
        assert lock in self._locks, lock
        return Dropped(Held(self._locks, self._taken, self._acquired, lock))

    @property
    def locks(self) -> tuple[Lock, ...]:
        """The locks held now, outermost first."""
        return tuple(self._locks)

    def event(
        self,
        function: str,
        decision: str,
        rule: Rule | None = None,
        candidate: ObjRef | None = None,
        **values: object,
    ) -> None:
        """Record a decision for the step being built: the rule that decided
        and the object it judged, if any, and the values it compared."""
        shown = tuple((k, _show(v)) for k, v in values.items())
        self._events.append(Event(function, decision, shown, rule, candidate))

    def unfinished(self, function: str, decision: str, where: Unfinished) -> None:
        """Record a decision taken where the proposal being modelled is
        unfinished (a TODO in its branch), marked with it."""
        self._events.append(Event(function, decision, unfinished=where))

    def warn(self, text: str) -> None:
        """Record a warning for the step being built (shown in red), once."""
        if text not in self._warnings:
            self._warnings.append(text)

    def step(self, function: str, summary: str) -> Step:
        """Close an inner step: keep the state as it is now."""
        for name in list(self._editors):
            self._commit_pagetable(name)
        if len(self.steps) >= self.limits.max_steps:
            raise LimitExceeded("max_steps", self.limits.max_steps, len(self.steps) + 1)
        step = Step(
            statement=self.statement,
            function=function,
            summary=summary,
            locks=tuple(dict.fromkeys([*self._locks, *self._taken])),
            held=tuple(self._locks),
            created=self._created.refs(),
            changed=self._changed.refs(),
            freed=Refs(tuple(self._freed)),
            events=tuple(self._events),
            warnings=tuple(self._warnings),
            state=self.state,
            acquired=tuple(self._acquired),
        )
        self.steps.append(step)
        self._created, self._changed, self._freed = Touched(), Touched(), {}
        self._events, self._warnings = [], []
        self._taken = {}
        self._acquired = []
        self._last = self.state
        return step


def _show(value: object) -> str:
    """A compared value as the views print it (addresses and pgoffs in hex)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return hex(value) if value >= 4096 else str(value)
    return str(value)
