"""What must hold in every snapshot, reported as data (shown in red).

Ours: the checks lockdep, VM_BUG_ON and the rmap code rely on. The rmap
check is the one a racing rmap user needs: from every mapped anonymous
page (or migration entry), folio->mapping must lead to an anon_vma
chained to the VMA that maps it, and folio->index must put the page at its
address (vma_address()). Under the cow_context rmap model the walk is the
branch's cow_context_walk(), run as coded: it must reach the VMA, and the
check of the contexts replaces the checks of chains and counters. The
lock-order check is lockdep's: each lock a
step takes, against the locks it already holds, in the order the comment
at the top of mm/rmap.c documents.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import NamedTuple

from immutables import Map

from engine.cow_context import (
    DUP_ANON_VMA_STUB,
    FORK_NOT_LINKED,
    WALK_EXCLUSIVE_STOP,
    CowWalk,
    cow_context_walk,
    offset_recorded,
    vma_offset,
    walk_skeleton,
)
from engine.mm_constants import PAGE_SHIFT, PAGE_SIZE
from engine.mm_types import MM, RUN_BLOCK_SHIFT, VMA, Folio, State
from engine.pagemap import linear_page_index
from engine.pagetable import MIGRATION, PRESENT, ZERO_PAGE, Leaf, PteRun
from engine.present.trace import lock_text
from engine.rmap import folio_anon_vma
from engine.sim.trace import Lock, LockKind, ObjKind, ObjRef, Unfinished


class RmapMiss(Enum):
    """Why an rmap walk from a folio would not reach one of its mappings."""

    NO_ANON_VMA = "folio->mapping names no live anon_vma"
    NOT_CHAINED = "the anon_vma has no chain to the VMA"
    WRONG_INDEX = "folio->index puts the page at another address"
    OTHER_FILE = "the shmem folio belongs to another file"
    NO_COW_CONTEXT = "the folio's cow_context is freed"
    NOT_VISITED = "cow_context_walk does not reach the VMA"
    EXCLUSIVE_EARLY_STOP = (
        "cow_context_walk stops early for an exclusive folio, before it reaches the VMA"
    )
    FORK_NOT_LINKED = "the VMA's mm is being forked: its cow_context is not in the tree yet"
    OFFSET_NOT_RECORDED = "the VMA's offset is not recorded for the folio's pgoffs"
    UNFAULTED_MAPS_FOLIOS = "the VMA maps the folio with its anon_vma NULL (not faulted)"


@dataclass(frozen=True, slots=True)
class RmapCheck:
    """The rmap check of one mapped page: `miss` is None when rmap finds it;
    `index` is the page's index (folio->index + page), `expected`
    linear_page_index() of where it is mapped."""

    miss: RmapMiss | None
    index: int
    expected: int

    @property
    def index_matches(self) -> bool:
        """folio->index agrees with linear_page_index(), chained or not."""
        return self.index == self.expected


def rmap_check(
    state: State, vma: VMA, addr: int, page: int, folio: Folio, walk: CowWalk | None = None
) -> RmapCheck:
    """Would rmap find page `page` of `folio` again where `vma` maps it, at addr?

    For an anonymous folio: rmap_walk_anon() from folio->mapping must visit
    `vma`, and there folio->index must put the page at addr. A shmem folio
    is found through its file: it must be the VMA's, at the same index.
    Under cow_context, cow_context_walk() from the folio's context must call
    rmap_one on `vma` (it reaches only the VMAs at the offset it tries, so
    there folio->index puts the page at addr); `walk` is that walk, when the
    caller already has it. The one check the invariants, the text picture
    and the web use.
    """
    index = folio.index + page
    expected = linear_page_index(vma, addr)
    miss: RmapMiss | None
    if folio.shmem is not None:
        if folio.shmem != vma.shmem:
            miss = RmapMiss.OTHER_FILE
        else:
            miss = None if index == expected else RmapMiss.WRONG_INDEX
        return RmapCheck(miss, index, expected)
    if state.rmap_model == "cow_context":
        return _cow_context_check(state, vma, folio, index, expected, walk)
    # rmap_walk_anon() visits `vma` only if it is in the anon_vma's tree,
    # and there at vma_address() of folio->index: at addr exactly when
    # the page's index is linear_page_index(vma, addr). So the walk finds
    # the page iff the anon_vma lives, chains vma, and the indexes agree.
    av = folio_anon_vma(state, folio)
    if av is not None and vma.id in av.chains and index == expected:
        return RmapCheck(None, index, expected)
    if av is None:
        miss = RmapMiss.NO_ANON_VMA
    elif vma.id not in av.chains:
        miss = RmapMiss.NOT_CHAINED
    else:
        miss = RmapMiss.WRONG_INDEX
    return RmapCheck(miss, index, expected)


def _cow_context_check(
    state: State, vma: VMA, folio: Folio, index: int, expected: int, walk: CowWalk | None
) -> RmapCheck:
    """rmap_check() under cow_context: does cow_context_walk() reach `vma`?"""
    if folio.mapping not in state.cow_contexts:
        return RmapCheck(RmapMiss.NO_COW_CONTEXT, index, expected)
    walk = walk or cow_context_walk(state, folio)
    if vma.id in walk.found and index == expected:
        miss = None
    elif vma.anon_vma is None:
        miss = RmapMiss.UNFAULTED_MAPS_FOLIOS
    elif vma.id in walk.found:
        miss = RmapMiss.WRONG_INDEX
    elif vma.id in walk.missed:
        miss = RmapMiss.EXCLUSIVE_EARLY_STOP
    elif index != expected:
        miss = RmapMiss.WRONG_INDEX
    elif _being_forked(state, vma.mm):
        miss = RmapMiss.FORK_NOT_LINKED
    elif vma_offset(vma) and not offset_recorded(state, vma, folio):
        miss = RmapMiss.OFFSET_NOT_RECORDED
    else:
        miss = RmapMiss.NOT_VISITED
    return RmapCheck(miss, index, expected)


def _being_forked(state: State, mm: str) -> bool:
    """A forked process whose context dup_cow_context() has not linked yet."""
    process = state.processes[mm]
    ctx = state.cow_contexts.get(process.cow_context or 0)
    return process.parent is not None and ctx is not None and ctx.parent is None


@dataclass(frozen=True)
class Violation:
    """One broken invariant: its kind, a sentence, the objects involved.

    `locked` marks an rmap violation behind a write-locked anon_vma: a
    racing rmap walker blocks on that lock, so it cannot see the mismatch.
    """

    kind: str
    message: str
    objects: tuple[ObjRef, ...]
    locked: bool = False
    pages: int = 1
    """How many pages the record stands for: a run of consecutive pages
    with the same violation is one record (summarise())."""
    unfinished: Unfinished | None = None
    """Set where the violation is the modelled proposal's unfinished part
    (the COW-context walk's exclusive early stop), with its own comment."""

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "objects": [str(ref) for ref in self.objects],
            "locked": self.locked,
            "pages": self.pages,
            "unfinished": None if self.unfinished is None else self.unfinished._asdict(),
        }


@dataclass(frozen=True)
class LockClass:
    """Where a lock sits in mm/rmap.c's "Lock ordering in mm" (outermost
    first), and whether taking it may sleep."""

    name: str
    rank: int
    sleeps: bool


# The documented order (mm/rmap.c, 6.18): mm->mmap_lock, folio_lock,
# vma_start_write, mapping->i_mmap_rwsem, anon_vma->rwsem,
# mm->page_table_lock or pte_lock. mm/mremap.c's move_ptes() comment takes
# the rmap locks (i_mmap_rwsem, anon_vma->rwsem) before the page-table
# locks. vma_start_write() is a mark, not a lock lockdep holds (its
# dep_map is acquired and released at once), so it is not ranked.
_LOCK_CLASSES = {
    LockKind.MMAP_LOCK: LockClass("mm->mmap_lock", 0, True),
    LockKind.FOLIO_LOCK: LockClass("folio_lock", 1, True),
    LockKind.ANON_VMA_RWSEM: LockClass("anon_vma->rwsem", 4, True),
    LockKind.PMD_LOCK: LockClass("pmd_trans_huge_lock (spinlock)", 5, False),
    LockKind.PTE_LOCK: LockClass("pte_lock (spinlock)", 5, False),
    LockKind.PAGE_TABLE_LOCKS: LockClass("pte_lock (spinlock)", 5, False),
}


def lock_class(lock: Lock) -> LockClass | None:
    """The documented class of a lock, None if unranked."""
    return _LOCK_CLASSES.get(lock.kind)


def lock_order(acquired: tuple[tuple[tuple[Lock, ...], Lock], ...]) -> list[Violation]:
    """Each acquisition (locks held, lock taken) that lockdep would report,
    once per pair of lock classes as lockdep does: a lock taken inside one
    the documented order puts after it, or a sleeping lock taken under a
    spinlock ("sleeping function called from invalid context"). Nesting
    within one class (two page-table locks, two anon_vma roots under
    lock_set_subclass()) is what the kernel annotates, and is not reported."""
    found = []
    seen: set[tuple[str, str]] = set()
    # A walk takes many locks of one kind under the same held locks: judge once.
    judged: set[tuple[int, LockKind]] = set()
    for held, lock in acquired:
        if (id(held), lock.kind) in judged:
            continue
        judged.add((id(held), lock.kind))
        taking = lock_class(lock)
        if taking is None:
            continue
        for outer in held:
            cls = lock_class(outer)
            if cls is None or (cls.name, taking.name) in seen:
                continue
            if taking.sleeps and not cls.sleeps:
                why = f"{taking.name} may sleep, taken under {cls.name}"
            elif cls.rank > taking.rank:
                why = f"mm/rmap.c orders {taking.name} before {cls.name}, taken inside it"
            else:
                continue
            seen.add((cls.name, taking.name))
            message = f"{why} ({lock_text(lock.first())}, under {lock_text(outer)})"
            found.append(Violation("lock_order", message, ()))
    return found


def check(
    state: State,
    locks: tuple[Lock, ...] = (),
    acquired: tuple[tuple[tuple[Lock, ...], Lock], ...] = (),
) -> list[Violation]:
    """Every violation in a snapshot, one per page (empty when all is well).

    `locks` are the locks held at that step (Step.held): an rmap mismatch
    on a folio whose anon_vma root is write-locked is marked `locked`.
    `acquired` are the step's lock acquisitions (Step.acquired), checked
    against the documented lock order.
    """
    held = _write_locked_roots(locks)
    found = _objects(state) + lock_order(acquired)
    for name in state.process_names():
        mm = state.processes[name]
        for pmd in mm.pagetable.pmd_indexes():
            found += [_locked(state, m, held) for m in _rmap_pages(state, mm, pmd)]
    return found


def summarise(state: State, locks: tuple[Lock, ...] = ()) -> list[Violation]:
    """check(), with each run of consecutive pages that break the rmap
    invariant the same way as one record (its range and page count)."""
    segments = _join(
        [
            seg
            for name in state.process_names()
            for pmd in state.processes[name].pagetable.pmd_indexes()
            for seg in _rmap_leaf(state, state.processes[name], pmd)
        ]
    )
    return _objects(state) + _records(state, segments, _write_locked_roots(locks))


class Checker:
    """summarise() over a run's snapshots in order, each step checking only
    what it changed: the objects of the step's created/changed/freed, the
    PTE tables it edited, the pages of the VMAs it changed and of the
    folios it touched. The rmap results of every other page are kept from
    the step before. The VMA, chain and counter checks, which cost what
    the VMAs and anon_vmas cost, not the pages, run in full each time.
    A PteRun table over FolioRuns costs one comparison per run, and is
    found from its folios by their block of ids, not folio by folio.
    The runs joined across tables are kept too: a rechecked table splices
    its runs in (_splice), so a step costs what it changed and what it
    reports, not every table that holds a violation.
    """

    def __init__(self) -> None:
        self._state: State | None = None
        # Each PTE table's pages that rmap would not find, as runs (_segments).
        self._leaves: dict[tuple[str, int], list[_Segment]] = {}
        self._folios: dict[tuple[str, int], set[int]] = {}
        # Where each folio is mapped: its first PTE table, and any others.
        self._home: dict[int, tuple[str, int]] = {}
        self._also: dict[int, set[tuple[str, int]]] = {}
        # PteRun tables by the folio ids they map, a block of ids at a time.
        self._ranges: dict[tuple[str, int], range] = {}
        self._run_home: dict[int, set[tuple[str, int]]] = {}
        # Every table's runs joined, in (process, address) order, with each
        # run's (process order, first page) to bisect by.
        self._runs: list[_Segment] = []
        self._starts: list[tuple[int, int]] = []
        self._order: dict[str, int] = {}

    def summarise(
        self, state: State, locks: tuple[Lock, ...] = (), folios: Iterable[range] = ()
    ) -> list[Violation]:
        """The summary of `state`, which follows the state last given; `folios`
        are the ids of the folios created, changed or freed since then
        (Step.folios_touched())."""
        before, self._state = self._state, state
        rechained = None if before is None else _rechained(before, state)
        if (
            before is None
            or rechained is None
            or before.shmem is not state.shmem
            or set(before.processes) != set(state.processes)
            or (
                before.cow_contexts is not state.cow_contexts
                and walk_skeleton(before) != walk_skeleton(state)
            )
        ):
            self._leaves, self._folios, self._home, self._also = {}, {}, {}, {}
            self._ranges, self._run_home = {}, {}
            self._order = {name: i for i, name in enumerate(state.process_names())}
            self._runs, self._starts = [], []
            stale = {
                (name, pmd)
                for name, mm in state.processes.items()
                for pmd in mm.pagetable.pmd_indexes()
            }
        else:
            stale = self._stale(before, state, folios, rechained or set())
        for name, pmd in sorted(stale, key=lambda key: (self._order[key[0]], key[1])):
            self._recheck(state, name, pmd)
            self._splice(name, pmd)
        return _objects(state) + _records(state, self._runs, _write_locked_roots(locks))

    def _splice(self, name: str, pmd: int) -> None:
        """Put the runs of table (name, pmd), just rechecked, in place of
        its pages in the joined runs: a run reaching into it from the table
        before keeps its head, one reaching past it into the next its tail
        (worded from those tables' own first and last misses), and the
        pieces join again with the runs either side."""
        order, lo, hi = self._order[name], pmd << 9, (pmd + 1) << 9
        runs, starts = self._runs, self._starts
        a = bisect.bisect_left(starts, (order, lo))
        b = bisect.bisect_left(starts, (order, hi), a)
        pieces: list[_Segment] = []
        if a > 0 and starts[a - 1][0] == order and runs[a - 1].last.vpn >= lo:
            a -= 1
            run, before = runs[a], self._leaves[(name, pmd - 1)][-1].last
            assert before.vpn == lo - 1, (name, pmd)
            pieces.append(_Segment(run.first, before, lo - run.first.vpn))
        pieces += self._leaves.get((name, pmd), ())
        if b > a and runs[b - 1].last.vpn >= hi:
            run, after = runs[b - 1], self._leaves[(name, pmd + 1)][0].first
            assert after.vpn == hi, (name, pmd)
            pieces.append(_Segment(after, run.last, run.last.vpn - hi + 1))
        if a > 0 and starts[a - 1][0] == order:
            a -= 1
            pieces.insert(0, runs[a])
        if b < len(runs) and starts[b][0] == order:
            pieces.append(runs[b])
            b += 1
        joined = _join(pieces)
        runs[a:b] = joined
        starts[a:b] = [(order, seg.first.vpn) for seg in joined]

    def _stale(
        self, before: State, state: State, folios: Iterable[range], rechained: set[int]
    ) -> set[tuple[str, int]]:
        """The PTE tables whose pages may check differently now; `rechained`
        are the VMAs chained to an anon_vma, or unchained from one, since.

        A table whose entries did not change, under VMAs that changed but
        that rmap_check treats as before (_cover), keeps its results, unless
        it holds a violation (which names its VMA).
        """
        stale = self._under_changed_vmas(before, state, rechained)
        if stale:
            chains = (_chained_to(before), _chained_to(state))
            stale = {
                key
                for key in stale
                if key in self._leaves
                or _cover(before, key, chains[0]) != _cover(state, key, chains[1])
            }
        for name, mm in state.processes.items():
            old = before.processes[name]
            if old is not mm:
                stale.update((name, pmd) for pmd in mm.pagetable.changed_pmds(old.pagetable))
        for ids in folios:
            for folio in ids:
                home = self._home.get(folio)
                if home is not None:
                    stale.add(home)
                    stale.update(self._also.get(folio, ()))
            if self._run_home:
                for block in _blocks(ids):
                    stale.update(self._run_home.get(block, ()))
        return stale

    @staticmethod
    def _under_changed_vmas(
        before: State, state: State, rechained: set[int]
    ) -> set[tuple[str, int]]:
        """The PTE tables under VMAs that changed, came, went or were (un)chained."""
        stale: set[tuple[str, int]] = set()
        if rechained:
            for name, mm in state.processes.items():
                old = before.processes[name]
                stale.update(_pmds_under(mm, old, state.vmas, before.vmas, rechained, whole=True))
        for name, mm in state.processes.items():
            old = before.processes[name]
            if old is not mm and old.vmas != mm.vmas:
                stale.update(
                    _pmds_under(mm, old, state.vmas, before.vmas, set(old.vmas) ^ set(mm.vmas))
                )
        if before.vmas is not state.vmas:
            moved = {
                v
                for v in set(before.vmas) | set(state.vmas)
                if before.vmas.get(v) is not state.vmas.get(v)
            }
            for name, mm in state.processes.items():
                old = before.processes[name]
                stale.update(_pmds_under(mm, old, state.vmas, before.vmas, moved))
        return stale

    def _recheck(self, state: State, name: str, pmd: int) -> None:
        key = (name, pmd)
        home, also = self._home, self._also
        for folio in self._folios.pop(key, ()):
            if home.get(folio) != key:
                also[folio].discard(key)
            elif folio in also:
                home[folio] = also[folio].pop()
            else:
                del home[folio]
            if not also.get(folio, True):
                del also[folio]
        old = self._ranges.pop(key, None)
        if old is not None:
            for block in _blocks(old):
                self._run_home[block].discard(key)
        seen: set[int] = set()
        mm = state.processes[name]
        segments = _rmap_leaf(state, mm, pmd, seen)
        for folio in seen:
            if home.setdefault(folio, key) != key:
                also.setdefault(folio, set()).add(key)
        self._folios[key] = seen
        leaf = mm.pagetable.leaf(pmd)
        if isinstance(leaf, PteRun):
            ids = self._ranges[key] = range(leaf.first, leaf.first + len(leaf))
            for block in _blocks(ids):
                self._run_home.setdefault(block, set()).add(key)
        if segments:
            self._leaves[key] = segments
        else:
            self._leaves.pop(key, None)


def _blocks(ids: range) -> range:
    """The RUN_BLOCK_SHIFT blocks of folio ids `ids` falls in."""
    if not ids:
        return range(0)
    return range(ids.start >> RUN_BLOCK_SHIFT, ((ids.stop - 1) >> RUN_BLOCK_SHIFT) + 1)


def _chained_to(state: State) -> dict[int, frozenset[int]]:
    """The anon_vmas whose tree holds each VMA (what rmap_check reads)."""
    found: dict[int, set[int]] = {}
    for av in state.anon_vmas.values():
        for v in av.chains:
            found.setdefault(v, set()).add(av.id)
    return {v: frozenset(avs) for v, avs in found.items()}


def _cover(
    state: State, key: tuple[str, int], chained: dict[int, frozenset[int]]
) -> list[tuple[int, int, object]]:
    """The pages of PTE table `key` as runs (first, end, how rmap_check
    sees their VMA: file, linear index at page 0, anon_vmas chained to it),
    adjacent runs seen alike joined: equal in two states, every page of the
    table checks the same in both (its entries being the same)."""
    name, pmd = key
    mm = state.processes[name]
    lo, hi = pmd << 9, (pmd + 1) << 9
    runs: list[tuple[int, int, object]] = []
    for v in mm.vmas:
        vma = state.vmas.get(v)
        if vma is None:
            continue
        first, end = max(lo, vma.vm_start >> PAGE_SHIFT), min(hi, vma.vm_end >> PAGE_SHIFT)
        if first >= end:
            continue
        seen = (vma.shmem, vma.vm_pgoff - (vma.vm_start >> PAGE_SHIFT), chained.get(v))
        if runs and runs[-1][1] == first and runs[-1][2] == seen:
            runs[-1] = (runs[-1][0], end, seen)
        else:
            runs.append((first, end, seen))
    return runs


def _rechained(before: State, state: State) -> set[int] | None:
    """The VMAs whose chains to anon_vmas changed between the two states
    (what rmap_check reads of an anon_vma: does it exist, is the page's VMA
    in its tree); None when an anon_vma was created or freed, which may
    change the check of any page whose folio->mapping names it."""
    if before.anon_vmas is state.anon_vmas:
        return set()
    vmas: set[int] = set()
    for av in set(before.anon_vmas) | set(state.anon_vmas):
        was, now = before.anon_vmas.get(av), state.anon_vmas.get(av)
        if was is now:
            continue
        if was is None or now is None:
            return None
        vmas |= was.chains ^ now.chains
    return vmas


def _pmds_under(
    mm: MM,
    old: MM,
    vmas: Map[int, VMA],
    old_vmas: Map[int, VMA],
    ids: set[int],
    whole: bool = False,
) -> set[tuple[str, int]]:
    """The populated PTE tables of `mm` (now or before) where VMAs `ids`
    changed what rmap finds: unless `whole`, a VMA that kept its file and
    its linear index (vm_start against vm_pgoff) and only grew or shrank
    changed the pages between its old and new ends; any other change, its
    whole old and new ranges."""
    ranges: list[tuple[int, int]] = []
    for v in ids:
        new, was = vmas.get(v), old_vmas.get(v)
        new = new if new is not None and new.mm == mm.name else None
        was = was if was is not None and was.mm == mm.name else None
        if not whole and new is not None and was is not None and _same_index(new, was):
            starts = sorted((new.vm_start, was.vm_start))
            ends = sorted((new.vm_end, was.vm_end))
            ranges += [(starts[0], starts[1]), (ends[0], ends[1])]
        else:
            ranges += [(x.vm_start, x.vm_end) for x in (new, was) if x is not None]
    found: set[tuple[str, int]] = set()
    for lo, hi in ranges:
        for table in (mm.pagetable, old.pagetable):
            pmds = table.pmd_indexes(lo >> PAGE_SHIFT, hi >> PAGE_SHIFT)
            found.update((mm.name, pmd) for pmd in pmds)
    return found


def _same_index(a: VMA, b: VMA) -> bool:
    """Do the two VMAs put every address they share at the same index of
    the same file (or of anonymous memory)?"""
    return (
        a.shmem == b.shmem
        and (a.vm_start >> PAGE_SHIFT) - a.vm_pgoff == (b.vm_start >> PAGE_SHIFT) - b.vm_pgoff
    )


def _write_locked_roots(locks: tuple[Lock, ...]) -> set[int]:
    return {
        lock.target.id
        for lock in locks
        if lock.kind is LockKind.ANON_VMA_RWSEM
        and lock.mode == "write"
        and isinstance(lock.target, ObjRef)
    }


def _objects(state: State) -> list[Violation]:
    """The checks of VMAs, chains and counters, or of the COW contexts
    (not of pages)."""
    if state.rmap_model == "cow_context":
        return _vma_order(state) + _cow_contexts(state)
    return _vma_order(state) + _chains(state) + _counters(state)


def _cow_contexts(state: State) -> list[Violation]:
    """What the branch's contexts must keep: refcnt is one for a live mm,
    one per child and one per folio pointing there; parent and children
    agree; each live mm's context names it; remap entries are ordered,
    disjoint and record only non-zero offsets."""
    found: list[Violation] = []
    contexts = state.cow_contexts
    folios = Counter(f.mapping for f in state.folios.values() if f.shmem is None)
    for ctx in contexts.values():
        ref = (ObjRef("cow_context", ctx.id),)
        live = ctx.mm is not None and ctx.mm in state.processes
        expected = int(live) + len(ctx.children) + folios.get(ctx.id, 0)
        if ctx.refcnt != expected:
            found.append(
                Violation(
                    "counter",
                    f"cow_context#{ctx.id} refcnt {ctx.refcnt} != {expected}"
                    f" (mm {int(live)} + {len(ctx.children)} children"
                    f" + {folios.get(ctx.id, 0)} folios)",
                    ref,
                )
            )
        if ctx.parent is not None and ctx.id not in getattr(
            contexts.get(ctx.parent), "children", ()
        ):
            found.append(
                Violation("cow_context", f"cow_context#{ctx.id} missing from its parent", ref)
            )
        for child in ctx.children:
            if getattr(contexts.get(child), "parent", None) != ctx.id:
                found.append(
                    Violation(
                        "cow_context",
                        f"cow_context#{ctx.id} lists cow_context#{child}, not its child",
                        ref,
                    )
                )
        prev_last = -1
        for r in ctx.remaps:
            if r.first <= prev_last or r.last < r.first or not r.offsets or 0 in r.offsets:
                found.append(
                    Violation(
                        "cow_context",
                        f"cow_context#{ctx.id}: remap entry {r.first:#x}-{r.last:#x} is"
                        " out of order, overlapping, empty or records offset 0",
                        ref,
                    )
                )
            prev_last = r.last
    for name, mm in state.processes.items():
        ctx_id = mm.cow_context
        if ctx_id is None or getattr(contexts.get(ctx_id), "mm", None) != name:
            found.append(
                Violation("cow_context", f"{name}'s cow_context is missing or not its own", ())
            )
    return found


def _vma_order(state: State) -> list[Violation]:
    found = []
    for name in state.process_names():
        mm = state.processes[name]
        prev_end = 0
        for v in mm.vmas:
            vma = state.vmas.get(v)
            if vma is None:
                found.append(
                    Violation("vma", f"{mm.name} lists freed vma#{v}", (ObjRef("vma", v),))
                )
                continue
            if vma.vm_start % PAGE_SIZE or vma.vm_end % PAGE_SIZE or vma.vm_start >= vma.vm_end:
                found.append(
                    Violation("vma", f"vma#{v} is empty or unaligned", (ObjRef("vma", v),))
                )
            if vma.vm_start < prev_end:
                found.append(
                    Violation("vma", f"vma#{v} overlaps or is out of order", (ObjRef("vma", v),))
                )
            prev_end = vma.vm_end
    return found


def _chains(state: State) -> list[Violation]:
    found = []
    for vma in state.vmas.values():
        for av_id in vma.avc:
            anon = state.anon_vmas.get(av_id)
            if anon is None or vma.id not in anon.chains:
                found.append(
                    Violation(
                        "chain",
                        f"vma#{vma.id}'s chain to anon_vma#{av_id} is missing from that anon_vma's tree",
                        (ObjRef("vma", vma.id), ObjRef("anon_vma", av_id)),
                    )
                )
        if vma.anon_vma is not None and vma.anon_vma not in vma.avc:
            found.append(
                Violation(
                    "chain",
                    f"vma#{vma.id} has no chain to its own anon_vma#{vma.anon_vma}",
                    (ObjRef("vma", vma.id),),
                )
            )
    for av in state.anon_vmas.values():
        for v in av.chains:
            chained = state.vmas.get(v)
            if chained is None or av.id not in chained.avc:
                found.append(
                    Violation(
                        "chain",
                        f"anon_vma#{av.id}'s tree holds vma#{v} without a matching chain",
                        (ObjRef("anon_vma", av.id), ObjRef("vma", v)),
                    )
                )
    return found


def _counters(state: State) -> list[Violation]:
    found = []
    active: dict[int, int] = {}
    for vma in state.vmas.values():
        if vma.anon_vma is not None:
            active[vma.anon_vma] = active.get(vma.anon_vma, 0) + 1
    children: dict[int, int] = {}
    for av in state.anon_vmas.values():
        if av.chains:
            children[av.parent] = children.get(av.parent, 0) + 1
    for av in state.anon_vmas.values():
        if av.num_active_vmas != active.get(av.id, 0):
            found.append(
                Violation(
                    "counter",
                    f"anon_vma#{av.id} num_active_vmas {av.num_active_vmas} != {active.get(av.id, 0)} VMAs using it",
                    (ObjRef("anon_vma", av.id),),
                )
            )
        if av.num_children != children.get(av.id, 0):
            found.append(
                Violation(
                    "counter",
                    f"anon_vma#{av.id} num_children {av.num_children} != {children.get(av.id, 0)} (self-parented root counts itself)",
                    (ObjRef("anon_vma", av.id),),
                )
            )
    return found


class _PageMiss(NamedTuple):
    """One page that rmap would not find again: its page number, its VMA,
    what makes it the same violation as its neighbours (`key`), the folio
    the PTE names, folio->mapping (for the locked flag; None once the folio
    is freed) and the check (None for a freed folio). Its Violation is
    worded only when shown (_violation)."""

    vpn: int
    vma: int
    key: tuple[object, ...]
    folio: int
    mapping: int | None
    check: RmapCheck | None


def _violation(miss: _PageMiss) -> Violation:
    """The record of one page rmap would not find again."""
    addr = miss.vpn << PAGE_SHIFT
    refs = (ObjRef("folio", miss.folio), ObjRef("vma", miss.vma))
    result = miss.check
    if result is None:
        return Violation("rmap", f"{addr:#x} maps freed folio#{miss.folio}", refs)
    if result.miss is RmapMiss.NO_ANON_VMA:
        why = f"mapping anon_vma#{miss.mapping} is freed: rmap would use freed memory"
    elif result.miss is RmapMiss.NOT_CHAINED:
        why = (
            f"anon_vma#{miss.mapping} has no chain to vma#{miss.vma}: rmap walk misses this mapping"
        )
    elif result.miss in _COW_MISSES:
        why = _cow_why(result.miss, miss.mapping, miss.vma)
        return Violation(
            "rmap",
            f"folio#{miss.folio} at {addr:#x}: {why}",
            refs,
            unfinished=_unfinished(result.miss),
        )
    else:
        why = (
            f"index {result.index:#x} != linear_page_index {result.expected:#x}:"
            " rmap walk looks at the wrong address"
        )
    return Violation("rmap", f"folio#{miss.folio} at {addr:#x}: {why}", refs)


def _locked(state: State, miss: _PageMiss, held: set[int]) -> Violation:
    av = state.anon_vmas.get(miss.mapping) if miss.mapping is not None else None
    return replace(_violation(miss), locked=av is not None and av.root in held)


def _rmap_leaf(state: State, mm: MM, pmd: int, seen: set[int] | None = None) -> list[_Segment]:
    """The rmap check of every page one PTE table of `mm` maps, as runs of
    consecutive pages rmap would miss the same way, in address order;
    `seen` collects the ids of the folios it checked one by one (all of a
    Map table's, those _run_unsure() left of a PteRun's)."""
    leaf = mm.pagetable.leaf(pmd)
    if leaf is None:
        return []
    if state.rmap_model == "cow_context":
        return _segments(_rmap_leaf_cow_context(state, mm, pmd, seen))
    base = pmd << 9
    vmas = _vmas_over(state, mm, base)
    if not isinstance(leaf, PteRun):
        return _segments(_page_misses(state, leaf, base, vmas, sorted(leaf), seen))
    unsure, failed = _run_unsure(state, leaf, base, vmas)
    segments = [_Segment(m, m, 1) for m in _page_misses(state, leaf, base, vmas, unsure, seen)]
    for off, nr in failed:
        (first,) = _page_misses(state, leaf, base, vmas, [off])
        (last,) = _page_misses(state, leaf, base, vmas, [off + nr - 1])
        segments.append(_Segment(first, last, nr))
    segments.sort(key=lambda seg: seg.first.vpn)
    return _join(segments)


def _rmap_pages(state: State, mm: MM, pmd: int) -> list[_PageMiss]:
    """The rmap check of every page one PTE table of `mm` maps, page by page."""
    leaf = mm.pagetable.leaf(pmd)
    if leaf is None:
        return []
    if state.rmap_model == "cow_context":
        return _rmap_leaf_cow_context(state, mm, pmd, None)
    base = pmd << 9
    return _page_misses(state, leaf, base, _vmas_over(state, mm, base), sorted(leaf))


def _vmas_over(state: State, mm: MM, base: int) -> list[VMA]:
    """The VMAs of `mm` over the PTE table whose first page is `base`."""
    return [
        state.vmas[v]
        for v in mm.vmas
        if state.vmas[v].vm_end > base << PAGE_SHIFT
        and state.vmas[v].vm_start < (base + 512) << PAGE_SHIFT
    ]


def _page_misses(
    state: State,
    leaf: Leaf,
    base: int,
    vmas: list[VMA],
    offsets: Iterable[int],
    seen: set[int] | None = None,
) -> list[_PageMiss]:
    """The pages at `offsets` (in order) of the PTE table at page `base`
    that rmap would not find again; `seen` collects the folios they map."""
    ends = [vma.vm_end >> PAGE_SHIFT for vma in vmas]
    found: list[_PageMiss] = []
    folios, anon_vmas = state.folios, state.anon_vmas
    # The VMA of the pages in turn: its page range, its linear index at
    # page 0, and for each folio->mapping met whether it is chained there.
    vma, lo, hi, delta = vmas[0] if vmas else None, 0, 0, 0
    chained: dict[int | None, bool] = {}
    for off in offsets:
        vpn = base | off
        if not lo <= vpn < hi:
            i = bisect.bisect_right(ends, vpn)
            if i == len(vmas) or vmas[i].vm_start >> PAGE_SHIFT > vpn:
                continue
            vma = vmas[i]
            lo, hi = vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT
            delta, chained = vma.vm_pgoff - lo, {}
        assert vma is not None
        pte = leaf[off]
        # A migration entry still names its folio, and migration finds it
        # again by the same rmap walk (remove_migration_ptes).
        if vma.shmem is not None or pte.kind not in (PRESENT, MIGRATION) or pte.folio == ZERO_PAGE:
            continue
        if seen is not None:
            seen.add(pte.folio)
        folio = folios.get(pte.folio)
        if folio is not None:
            # rmap_check()'s answer for a chained page at its linear index,
            # without its call: the common case, once per page.
            if folio.shmem is None and folio.index + pte.page == vpn + delta:
                found_here = chained.get(folio.mapping)
                if found_here is None:
                    av = anon_vmas.get(folio.mapping) if folio.mapping is not None else None
                    found_here = chained[folio.mapping] = av is not None and vma.id in av.chains
                if found_here:
                    continue
            result = rmap_check(state, vma, vpn << PAGE_SHIFT, pte.page, folio)
            if result.miss is None:
                continue
        if folio is None:
            found.append(_PageMiss(vpn, vma.id, ("freed", vma.id), pte.folio, None, None))
            continue
        found.append(_page_miss(vpn, vma.id, folio, result))
    return found


def _page_miss(vpn: int, vma: int, folio: Folio, result: RmapCheck) -> _PageMiss:
    """The record of a page whose check missed, keyed so that neighbours
    missed the same way join one run."""
    key: tuple[object, ...] = (result.miss, vma, folio.mapping)
    if result.miss is RmapMiss.WRONG_INDEX:
        key += (result.index - result.expected,)
    return _PageMiss(vpn, vma, key, folio.id, folio.mapping, result)


def _rmap_leaf_cow_context(
    state: State, mm: MM, pmd: int, seen: set[int] | None
) -> list[_PageMiss]:
    """_rmap_leaf() under cow_context: each page's folio walked once
    (cow_context_walk) and its VMA looked for among those the walk reaches."""
    leaf = mm.pagetable.leaf(pmd)
    assert leaf is not None
    base = pmd << 9
    walks: dict[int, CowWalk] = {}
    found: list[_PageMiss] = []
    vmas = [state.vmas[v] for v in mm.vmas]
    ends = [vma.vm_end >> PAGE_SHIFT for vma in vmas]
    for off in sorted(leaf):
        vpn = base | off
        addr = vpn << PAGE_SHIFT
        i = bisect.bisect_right(ends, vpn)
        if i == len(vmas) or vmas[i].vm_start > addr or vmas[i].shmem is not None:
            continue
        vma, pte = vmas[i], leaf[off]
        if pte.kind not in (PRESENT, MIGRATION) or pte.folio == ZERO_PAGE:
            continue
        if seen is not None:
            seen.add(pte.folio)
        folio = state.folios.get(pte.folio)
        if folio is None:
            found.append(_PageMiss(vpn, vma.id, ("freed", vma.id), pte.folio, None, None))
            continue
        walk = walks.get(folio.id)
        if walk is None:
            walk = walks[folio.id] = cow_context_walk(state, folio)
        result = rmap_check(state, vma, addr, pte.page, folio, walk)
        if result.miss is None:
            continue
        found.append(_page_miss(vpn, vma.id, folio, result))
    return found


def _run_unsure(
    state: State, leaf: PteRun, base: int, vmas: list[VMA]
) -> tuple[list[int], list[tuple[int, int]]]:
    """A PteRun table's pages by what one comparison per FolioRun says (a
    run's index and the table's pages both advance by one a page): the
    offsets to check one by one (folios not in runs), and the (offset,
    pages) of each run rmap misses the same way at every page. The pages
    of runs rmap finds are in neither; pages under no VMA or under a shmem
    VMA neither, as the page loop skips them."""
    unsure: list[int] = []
    failed: list[tuple[int, int]] = []
    for vma in vmas:
        a = max(base + leaf.lo, vma.vm_start >> PAGE_SHIFT)
        b = min(base + leaf.hi, vma.vm_end >> PAGE_SHIFT)
        if a >= b or vma.shmem is not None:
            continue
        delta = vma.vm_pgoff - (vma.vm_start >> PAGE_SHIFT)
        first = leaf.folio_of(a - base)
        runs = state.folios.runs_over(first, first + b - a)
        if runs is None:
            unsure.extend(range(a - base, b - base))
            continue
        for run in runs:
            off = a - base + run.first - first
            av = state.anon_vmas.get(run.mapping) if run.mapping is not None else None
            if run.index != base + off + delta or av is None or vma.id not in av.chains:
                failed.append((off, run.nr))
    return unsure, failed


class _Segment(NamedTuple):
    """Consecutive pages with the same violation: the first and last page's
    misses and how many pages."""

    first: _PageMiss
    last: _PageMiss
    pages: int


def _segments(misses: list[_PageMiss]) -> list[_Segment]:
    """`misses` (in address order) as runs of consecutive pages with the same key."""
    return _join([_Segment(m, m, 1) for m in misses])


def _join(segments: list[_Segment]) -> list[_Segment]:
    """`segments` (in address order) with each one that continues the one
    before (same key, next page) joined to it."""
    joined: list[_Segment] = []
    for seg in segments:
        if joined:
            prev = joined[-1]
            if seg.first.key == prev.first.key and seg.first.vpn == prev.last.vpn + 1:
                joined[-1] = _Segment(prev.first, seg.last, prev.pages + seg.pages)
                continue
        joined.append(seg)
    return joined


def _records(state: State, segments: list[_Segment], held: set[int]) -> list[Violation]:
    """One record per run; a run of one page keeps its own violation."""
    found: list[Violation] = []
    for seg in segments:
        first = _locked(state, seg.first, held)
        if seg.pages == 1:
            found.append(first)
        else:
            found.append(_run(state, first, seg.first, seg.last.vpn, seg.pages))
    return found


def _run(state: State, first: Violation, miss: _PageMiss, last_vpn: int, pages: int) -> Violation:
    """The record of pages miss.vpn..last_vpn, worded after the first page."""
    start, end = miss.vpn << PAGE_SHIFT, ((last_vpn + 1) << PAGE_SHIFT) - 1
    vma, what = miss.vma, miss.key[0]
    if what == "freed":
        why = "map freed folios"
    elif what is RmapMiss.NO_ANON_VMA:
        why = f"mapping anon_vma#{miss.mapping} is freed: rmap would use freed memory"
    elif what is RmapMiss.NOT_CHAINED:
        why = f"anon_vma#{miss.mapping} has no chain to vma#{vma}: rmap walk misses these mappings"
    elif isinstance(what, RmapMiss) and what in _COW_MISSES:
        why = _cow_why(what, miss.mapping, vma)
    else:
        why = "index != linear page index: rmap walk looks at the wrong address"
    if first.locked and miss.mapping is not None:
        why += f", behind write-locked anon_vma#{state.anon_vmas[miss.mapping].root}"
    objects: tuple[ObjRef, ...] = (ObjRef("vma", vma),)
    if miss.mapping is not None:
        kind: ObjKind = "cow_context" if state.rmap_model == "cow_context" else "anon_vma"
        objects += (ObjRef(kind, miss.mapping),)
    message = f"pages {start:#x}-{end:#x} ({pages}) of vma#{vma}: {why}"
    return Violation("rmap", message, objects, first.locked, pages, first.unfinished)


_COW_MISSES = (
    RmapMiss.UNFAULTED_MAPS_FOLIOS,
    RmapMiss.NO_COW_CONTEXT,
    RmapMiss.NOT_VISITED,
    RmapMiss.EXCLUSIVE_EARLY_STOP,
    RmapMiss.FORK_NOT_LINKED,
    RmapMiss.OFFSET_NOT_RECORDED,
)


def _cow_why(miss: RmapMiss, context: int | None, vma: int) -> str:
    """The sentence for a page cow_context_walk() would not find."""
    if miss is RmapMiss.NO_COW_CONTEXT:
        return f"its cow_context#{context} is freed: rmap would use freed memory"
    if miss is RmapMiss.EXCLUSIVE_EARLY_STOP:
        return (
            f"cow_context_walk from cow_context#{context} stops at the exclusive early"
            f" return before it reaches vma#{vma}"
        )
    if miss is RmapMiss.UNFAULTED_MAPS_FOLIOS:
        return (
            f"vma#{vma} maps it with anon_vma NULL (an unfaulted target took in a faulted"
            " range: dup_anon_vma() is a stub), so a move re-based its pgoff and no walk"
            " finds the page where it is"
        )
    if miss is RmapMiss.OFFSET_NOT_RECORDED:
        return (
            f"vma#{vma}'s offset is not recorded in its cow_context for these pgoffs:"
            " no walk reaches it (cow_context_verify_vma() would print MISMATCH)"
        )
    if miss is RmapMiss.FORK_NOT_LINKED:
        return (
            f"cow_context_walk from cow_context#{context} cannot reach vma#{vma} yet:"
            " the forked child's cow_context is linked into the tree after dup_mmap()'s loop"
        )
    return f"cow_context_walk from cow_context#{context} never reaches vma#{vma}"


def _unfinished(miss: RmapMiss) -> Unfinished | None:
    if miss is RmapMiss.EXCLUSIVE_EARLY_STOP:
        return WALK_EXCLUSIVE_STOP
    if miss is RmapMiss.UNFAULTED_MAPS_FOLIOS:
        return DUP_ANON_VMA_STUB
    return FORK_NOT_LINKED if miss is RmapMiss.FORK_NOT_LINKED else None
