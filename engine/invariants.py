"""What must hold in every snapshot, reported as data (shown in red).

Ours: the checks lockdep, VM_BUG_ON and the rmap code rely on. The rmap
check is the one a racing rmap user needs: from every mapped anonymous
page (or migration entry), folio->mapping must lead to an anon_vma
chained to the VMA that maps it, and folio->index must put the page at its
address (vma_address()). The lock-order check is lockdep's: each lock a
step takes, against the locks it already holds, in the order the comment
at the top of mm/rmap.c documents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum

from engine.mm_constants import PAGE_SHIFT, PAGE_SIZE
from engine.mm_types import VMA, Folio, State
from engine.pagemap import linear_page_index
from engine.pagetable import MIGRATION, PRESENT, ZERO_PAGE
from engine.rmap import folio_anon_vma, rmap_walk_anon


class RmapMiss(Enum):
    """Why an rmap walk from a folio would not reach one of its mappings."""

    NO_ANON_VMA = "folio->mapping names no live anon_vma"
    NOT_CHAINED = "the anon_vma has no chain to the VMA"
    WRONG_INDEX = "folio->index puts the page at another address"
    OTHER_FILE = "the shmem folio belongs to another file"


@dataclass(frozen=True)
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


def rmap_check(state: State, vma: VMA, addr: int, page: int, folio: Folio) -> RmapCheck:
    """Would rmap find page `page` of `folio` again where `vma` maps it, at addr?

    For an anonymous folio: rmap_walk_anon() from folio->mapping must visit
    `vma`, and there folio->index must put the page at addr. A shmem folio
    is found through its file: it must be the VMA's, at the same index.
    The one check the invariants, the text picture and the web use.
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
    for seen, _ in rmap_walk_anon(state, folio):
        if seen.id == vma.id and linear_page_index(seen, addr) == index:
            return RmapCheck(None, index, expected)
    av = folio_anon_vma(state, folio)
    if av is None:
        miss = RmapMiss.NO_ANON_VMA
    elif vma.id not in av.chains:
        miss = RmapMiss.NOT_CHAINED
    else:
        miss = RmapMiss.WRONG_INDEX
    return RmapCheck(miss, index, expected)


@dataclass(frozen=True)
class Violation:
    """One broken invariant: its kind, a sentence, the objects involved.

    `locked` marks an rmap violation behind a write-locked anon_vma: a
    racing rmap walker blocks on that lock, so it cannot see the mismatch.
    """

    kind: str
    message: str
    objects: tuple[str, ...]
    locked: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "objects": list(self.objects),
            "locked": self.locked,
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
_LOCK_CLASSES = (
    ("mmap_lock", LockClass("mm->mmap_lock", 0, True)),
    ("folio lock", LockClass("folio_lock", 1, True)),
    ("i_mmap_rwsem", LockClass("mapping->i_mmap_rwsem", 3, True)),
    ("anon_vma rwsem", LockClass("anon_vma->rwsem", 4, True)),
    ("pmd lock", LockClass("pmd_trans_huge_lock (spinlock)", 5, False)),
    ("PTE lock", LockClass("pte_lock (spinlock)", 5, False)),
    ("page-table locks", LockClass("pte_lock (spinlock)", 5, False)),
)


def lock_class(lock: str) -> LockClass | None:
    """The documented class of a lock the engine names, None if unranked."""
    return next((c for prefix, c in _LOCK_CLASSES if lock.startswith(prefix)), None)


def lock_order(acquired: tuple[tuple[tuple[str, ...], str], ...]) -> list[Violation]:
    """Each acquisition (locks held, lock taken) that lockdep would report,
    once per pair of lock classes as lockdep does: a lock taken inside one
    the documented order puts after it, or a sleeping lock taken under a
    spinlock ("sleeping function called from invalid context"). Nesting
    within one class (two page-table locks, two anon_vma roots under
    lock_set_subclass()) is what the kernel annotates, and is not reported."""
    found = []
    seen: set[tuple[str, str]] = set()
    for held, lock in acquired:
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
            found.append(Violation("lock_order", f"{why} ({lock}, under {outer})", ()))
    return found


_ANON_VMA_LOCK = re.compile(r"anon_vma rwsem \(write\) of anon_vma#(\d+)")


def check(
    state: State,
    locks: tuple[str, ...] = (),
    acquired: tuple[tuple[tuple[str, ...], str], ...] = (),
) -> list[Violation]:
    """Every violation in a snapshot (empty when all is well).

    `locks` are the locks held at that step (Step.held): an rmap mismatch
    on a folio whose anon_vma root is write-locked is marked `locked`.
    `acquired` are the step's lock acquisitions (Step.acquired), checked
    against the documented lock order.
    """
    held = {int(m.group(1)) for lock in locks if (m := _ANON_VMA_LOCK.search(lock))}
    found: list[Violation] = []
    found += _vma_order(state)
    found += _chains(state)
    found += _counters(state)
    found += lock_order(acquired)
    for v in _rmap(state):
        folio = state.folios.get(int(v.objects[0].split(":")[1]))
        av = state.anon_vmas.get(folio.mapping) if folio and folio.mapping is not None else None
        found.append(replace(v, locked=av is not None and av.root in held))
    return found


def _vma_order(state: State) -> list[Violation]:
    found = []
    for mm in state.processes.values():
        prev_end = 0
        for v in mm.vmas:
            vma = state.vmas.get(v)
            if vma is None:
                found.append(Violation("vma", f"{mm.name} lists freed vma#{v}", (f"vma:{v}",)))
                continue
            if vma.vm_start % PAGE_SIZE or vma.vm_end % PAGE_SIZE or vma.vm_start >= vma.vm_end:
                found.append(Violation("vma", f"vma#{v} is empty or unaligned", (f"vma:{v}",)))
            if vma.vm_start < prev_end:
                found.append(
                    Violation("vma", f"vma#{v} overlaps or is out of order", (f"vma:{v}",))
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
                        (f"vma:{vma.id}", f"anon_vma:{av_id}"),
                    )
                )
        if vma.anon_vma is not None and vma.anon_vma not in vma.avc:
            found.append(
                Violation(
                    "chain",
                    f"vma#{vma.id} has no chain to its own anon_vma#{vma.anon_vma}",
                    (f"vma:{vma.id}",),
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
                        (f"anon_vma:{av.id}", f"vma:{v}"),
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
                    (f"anon_vma:{av.id}",),
                )
            )
        if av.num_children != children.get(av.id, 0):
            found.append(
                Violation(
                    "counter",
                    f"anon_vma#{av.id} num_children {av.num_children} != {children.get(av.id, 0)} (self-parented root counts itself)",
                    (f"anon_vma:{av.id}",),
                )
            )
    return found


def _rmap(state: State) -> list[Violation]:
    found = []
    for mm in state.processes.values():
        for v in mm.vmas:
            vma = state.vmas[v]
            if vma.shmem is not None:
                continue
            for vpn, pte in mm.pagetable.items(
                vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT
            ):
                # A migration entry still names its folio, and migration
                # finds it again by the same rmap walk (remove_migration_ptes).
                if pte.kind not in (PRESENT, MIGRATION) or pte.folio == ZERO_PAGE:
                    continue
                folio = state.folios.get(pte.folio)
                addr = vpn << PAGE_SHIFT
                refs = (f"folio:{pte.folio}", f"vma:{vma.id}")
                if folio is None:
                    found.append(Violation("rmap", f"{addr:#x} maps freed folio#{pte.folio}", refs))
                    continue
                result = rmap_check(state, vma, addr, pte.page, folio)
                if result.miss is None:
                    continue
                where = f"folio#{folio.id} at {addr:#x}"
                if result.miss is RmapMiss.NO_ANON_VMA:
                    why = f"mapping anon_vma#{folio.mapping} is freed: rmap would use freed memory"
                elif result.miss is RmapMiss.NOT_CHAINED:
                    why = (
                        f"anon_vma#{folio.mapping} has no chain to vma#{vma.id}:"
                        " rmap walk misses this mapping"
                    )
                else:
                    why = (
                        f"index {result.index:#x} != linear_page_index {result.expected:#x}:"
                        " rmap walk looks at the wrong address"
                    )
                found.append(Violation("rmap", f"{where}: {why}", refs))
    return found
