"""What must hold in every snapshot, reported as data (shown in red).

Ours: the checks lockdep, VM_BUG_ON and the rmap code rely on. The rmap
check is the one a racing rmap user needs: from every mapped anonymous
page (or migration entry), folio->mapping must lead to an anon_vma
chained to the VMA that maps it, and folio->index must put the page at its
address (vma_address()).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from engine.mm_constants import PAGE_SHIFT, PAGE_SIZE
from engine.mm_types import VMA, Folio, State
from engine.pagemap import linear_page_index
from engine.pagetable import MIGRATION, PRESENT, ZERO_PAGE
from engine.rmap import folio_anon_vma, rmap_walk_anon
from engine.sim.trace import Lock, LockKind, ObjRef


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
    objects: tuple[ObjRef, ...]
    locked: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "message": self.message,
            "objects": [str(ref) for ref in self.objects],
            "locked": self.locked,
        }


def check(state: State, locks: tuple[Lock, ...] = ()) -> list[Violation]:
    """Every violation in a snapshot (empty when all is well).

    `locks` are the locks held at that step (Step.held): an rmap mismatch
    on a folio whose anon_vma root is write-locked is marked `locked`.
    """
    held = {
        lock.target.id
        for lock in locks
        if lock.kind is LockKind.ANON_VMA_RWSEM
        and lock.mode == "write"
        and isinstance(lock.target, ObjRef)
    }
    found: list[Violation] = []
    found += _vma_order(state)
    found += _chains(state)
    found += _counters(state)
    for v, folio in _rmap(state):
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


def _rmap(state: State) -> list[tuple[Violation, Folio | None]]:
    """Each rmap violation, with the folio it is about (None once freed)."""
    found: list[tuple[Violation, Folio | None]] = []
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
                refs = (ObjRef("folio", pte.folio), ObjRef("vma", vma.id))
                if folio is None:
                    found.append(
                        (Violation("rmap", f"{addr:#x} maps freed folio#{pte.folio}", refs), None)
                    )
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
                found.append((Violation("rmap", f"{where}: {why}", refs), folio))
    return found
