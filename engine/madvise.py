"""madvise(2), and the engine's own calls that put non-present entries in
page tables (swap-out, migration entries).

Models mm/madvise.c: madvise_walk_vmas() visits each VMA part of the range
and reports -ENOMEM for holes only after doing the rest; advice that
changes vm_flags goes through madvise_update_vma() (merge or split);
MADV_DONTNEED and MADV_PAGEOUT act on the page tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from engine.gup import faultin_page_range
from engine.huge_memory import split_folio, split_huge_pmd_edges
from engine.memory import unmap_mapping_range, zap_page_range
from engine.mm_constants import HPAGE_PMD_NR, PAGE_SHIFT, PAGE_SIZE, page_align
from engine.mm_types import (
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_MAYSHARE,
    VM_MERGEABLE,
    VM_NOHUGEPAGE,
    VM_PFNMAP,
    VM_RAND_READ,
    VM_READ,
    VM_SEQ_READ,
    VM_SHARED,
    VM_SPECIAL,
    VM_WIPEONFORK,
    VM_WRITE,
    VMA,
    Folio,
)
from engine.pagemap import linear_page_index
from engine.pagetable import MIGRATION, PRESENT, SWAP, ZERO_PAGE, Pte
from engine.shmem import remove_mapping, shmem_truncate_range
from engine.sim.errors import SyscallError
from engine.sim.kernel import Kernel
from engine.uapi import MADV
from engine.vma import SplitError, find_vma, vma_before, vma_modify

# advice -> (flags to set, flags to clear) for madvise_update_vma()
FLAG_ADVICE: dict[int, tuple[int, int]] = {
    MADV["MADV_NORMAL"]: (0, VM_RAND_READ | VM_SEQ_READ),
    MADV["MADV_RANDOM"]: (VM_RAND_READ, VM_SEQ_READ),
    MADV["MADV_SEQUENTIAL"]: (VM_SEQ_READ, VM_RAND_READ),
    MADV["MADV_DONTFORK"]: (VM_DONTCOPY, 0),
    MADV["MADV_DOFORK"]: (0, VM_DONTCOPY),
    MADV["MADV_WIPEONFORK"]: (VM_WIPEONFORK, 0),
    MADV["MADV_KEEPONFORK"]: (0, VM_WIPEONFORK),
    MADV["MADV_DONTDUMP"]: (VM_DONTDUMP, 0),
    MADV["MADV_DODUMP"]: (0, VM_DONTDUMP),
    MADV["MADV_HUGEPAGE"]: (VM_HUGEPAGE, VM_NOHUGEPAGE),
    MADV["MADV_NOHUGEPAGE"]: (VM_NOHUGEPAGE, VM_HUGEPAGE),
    MADV["MADV_MERGEABLE"]: (VM_MERGEABLE, 0),
    MADV["MADV_UNMERGEABLE"]: (0, VM_MERGEABLE),
}
NO_OP_ADVICE = {
    MADV["MADV_WILLNEED"],
}
NAMES = {v: k for k, v in MADV.items()}

Visit = Callable[[Kernel, VMA | None, VMA, int, int], VMA]


def do_madvise(k: Kernel, mm: str, start: int, length: int, advice: int) -> None:
    """Models mm/madvise.c:do_madvise()."""
    valid = (
        set(FLAG_ADVICE)
        | NO_OP_ADVICE
        | {
            MADV["MADV_COLD"],
            MADV["MADV_DONTNEED"],
            MADV["MADV_FREE"],
            MADV["MADV_PAGEOUT"],
            MADV["MADV_POPULATE_READ"],
            MADV["MADV_POPULATE_WRITE"],
            MADV["MADV_REMOVE"],
        }
    )
    if advice not in valid:
        raise SyscallError("EINVAL", f"advice {advice} not known")
    if start % PAGE_SIZE:
        raise SyscallError("EINVAL", "start not page aligned")
    aligned = page_align(length)
    if length and not aligned:
        raise SyscallError("EINVAL", "length wraps")
    end = start + aligned
    if end >= 1 << 64:
        raise SyscallError("EINVAL", "range wraps")
    if end == start:
        return
    if advice in (MADV["MADV_POPULATE_READ"], MADV["MADV_POPULATE_WRITE"]):
        _populate(k, mm, start, end, advice == MADV["MADV_POPULATE_WRITE"])
        return
    visit = _visitor(advice)
    madvise_walk_vmas(k, mm, start, end, visit, NAMES[advice])


def madvise_walk_vmas(k: Kernel, mm: str, start: int, end: int, visit: Visit, name: str) -> None:
    """Models mm/madvise.c:madvise_walk_vmas(): every VMA part, holes last."""
    vma = find_vma(k.state, mm, start)
    prev = vma_before(k.state, mm, start) if vma is None or vma.vm_start >= start else vma
    hole = False
    while True:
        if vma is None:
            raise SyscallError("ENOMEM", f"{start:#x}-{end:#x} is not mapped")
        if start < vma.vm_start:
            hole = True
            start = vma.vm_start
            if start >= end:
                break
        tmp = min(vma.vm_end, end)
        prev = visit(k, prev, vma, start, tmp)
        start = tmp
        if prev is not None and start < prev.vm_end:
            start = prev.vm_end
        if start >= end:
            break
        vma = find_vma(k.state, mm, prev.vm_end if prev is not None else start)
    k.step("mm/madvise.c:madvise_walk_vmas", f"{name} done")
    if hole:
        raise SyscallError("ENOMEM", "part of the range is not mapped (the rest was advised)")


def _visitor(advice: int) -> Visit:
    if advice in FLAG_ADVICE:
        set_bits, clear_bits = FLAG_ADVICE[advice]

        def update(k: Kernel, prev: VMA | None, vma: VMA, start: int, end: int) -> VMA:
            return madvise_update_vma(k, prev, vma, start, end, advice, set_bits, clear_bits)

        return update
    if advice == MADV["MADV_DONTNEED"]:
        return _dontneed
    if advice == MADV["MADV_COLD"]:
        return _cold
    if advice == MADV["MADV_PAGEOUT"]:
        return _pageout
    if advice == MADV["MADV_REMOVE"]:
        return _remove
    if advice == MADV["MADV_FREE"]:
        return _free
    return lambda k, prev, vma, start, end: vma


def madvise_update_vma(
    k: Kernel,
    prev: VMA | None,
    vma: VMA,
    start: int,
    end: int,
    advice: int,
    set_bits: int,
    clear_bits: int,
) -> VMA:
    """Models mm/madvise.c:madvise_update_vma(): new vm_flags for a range."""
    if advice == MADV["MADV_WIPEONFORK"] and (not vma.is_anonymous() or vma.vm_flags & VM_SHARED):
        raise SyscallError("EINVAL", "MADV_WIPEONFORK needs private anonymous memory")
    if advice == MADV["MADV_DOFORK"] and vma.vm_flags & VM_IO:
        raise SyscallError("EINVAL", "MADV_DOFORK on VM_IO")
    if advice == MADV["MADV_DODUMP"] and vma.vm_flags & VM_SPECIAL:
        raise SyscallError("EINVAL", "MADV_DODUMP on a special mapping")
    if advice == MADV["MADV_MERGEABLE"] and vma.vm_flags & (
        VM_SHARED | VM_MAYSHARE | VM_SPECIAL | VM_HUGETLB
    ):
        return vma
    newflags = (vma.vm_flags | set_bits) & ~clear_bits
    if newflags == vma.vm_flags:
        return vma
    try:
        vma = vma_modify(k, prev, vma, start, end, newflags, "madvise_update_vma")
    except SplitError as err:
        raise SyscallError("ENOMEM", "split_vma: map_count at max_map_count") from err
    vma = k.put_vma(replace(vma, vm_flags=newflags))
    k.step(
        "mm/madvise.c:madvise_update_vma",
        f"vma#{vma.id} {vma.vm_start:#x}-{vma.vm_end:#x} new vm_flags",
    )
    return vma


def _dontneed(k: Kernel, prev: VMA | None, vma: VMA, start: int, end: int) -> VMA:
    """Models madvise_dontneed_single_vma(): zap the range's pages.

    The VMA and its anon_vma stay; the next touch faults in fresh pages.
    With CONFIG_PT_RECLAIM (machine profile) the zap asks for reclaim_pt:
    the PTE tables the range covers whole are freed, so a later fault
    there may map a THP; a table the range covers in part stays, even
    empty, and keeps the PMD from being none.
    """
    if vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):
        raise SyscallError("EINVAL", "MADV_DONTNEED on a locked or special mapping")
    count = zap_page_range(k, vma.mm, start, end, reclaim_pt=k.profile.pt_reclaim)
    k.step(
        "mm/madvise.c:madvise_dontneed_single_vma", f"zapped {count} entries in {start:#x}-{end:#x}"
    )
    return vma


def madvise_folio_pte_batch(k: Kernel, mm: str, vpn: int, pte: Pte, hi: int) -> int:
    """Models mm/madvise.c:madvise_folio_pte_batch() (folio_pte_batch() of
    mm/internal.h): how many PTEs from `vpn` on, up to `hi` and the end of
    this PTE table, map the next pages of `pte`'s folio in order."""
    table_end = (vpn | (HPAGE_PMD_NR - 1)) + 1
    nr = 1
    for next_vpn, entry in k.pagetable(mm).items(vpn + 1, min(hi, table_end)):
        if next_vpn != vpn + nr or entry.kind != PRESENT or entry.folio != pte.folio:
            break
        if entry.page != pte.page + nr:
            break
        nr += 1
    return nr


def _large_folios(k: Kernel, vma: VMA, start: int, end: int) -> dict[int, tuple[int, bool]]:
    """Each large folio [start, end) maps, at its first entry in address
    order: (head vpn, whether the walk finds it whole there). A PMD leaf is
    whole when the range covers the PMD (madvise_free_huge_pmd(), the
    pmd_trans_huge() branch of madvise_cold_or_pageout_pte_range()); a
    PTE-mapped folio when madvise_folio_pte_batch() finds all its pages
    there in order, so one whose other pages mremap moved elsewhere is not."""
    lo, hi = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    found: dict[int, tuple[int, bool]] = {}
    for vpn, pte in k.pagetable(vma.mm).items(lo, hi):
        if pte.kind != PRESENT or pte.folio == ZERO_PAGE or pte.folio in found:
            continue
        folio = k.folio(pte.folio)
        if not folio.order:
            continue
        if pte.pmd:
            whole = pte.page == 0 and vpn + HPAGE_PMD_NR <= hi
        else:
            whole = madvise_folio_pte_batch(k, vma.mm, vpn, pte, hi) == folio.nr_pages
        found[folio.id] = (vpn - pte.page, whole)
    return found


def _split_straddling(k: Kernel, vma: VMA, start: int, end: int) -> int:
    """The split madvise_cold_or_pageout_pte_range(), madvise_free_huge_pmd()
    and madvise_free_pte_range() share: a large folio the range does not
    map whole (a PMD not wholly inside, a PTE batch shorter than the folio:
    cut by an edge, or only part of it mapped here) is split with
    split_folio(), unless another mapping holds it (folio_maybe_mapped_shared)
    or a pin makes the split fail; the walk then goes on over the small
    folios. Returns how many folios were split."""
    split = 0
    for ident, (head, whole) in _large_folios(k, vma, start, end).items():
        folio = k.folio(ident)
        if not whole and folio.shmem is None and not folio.maybe_mapped_shared():
            # The walk's folio_get() is the caller's reference.
            split += split_folio(k, vma, folio, head, caller_pins=1) is None
    return split


def _cold(k: Kernel, prev: VMA | None, vma: VMA, start: int, end: int) -> VMA:
    """Models madvise_cold(): can_madv_lru_vma(), then
    madvise_cold_or_pageout_pte_range() without pageout: large folios the
    range cuts are split; the rest only moves to the inactive LRU, which
    no page table shows."""
    if vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):
        raise SyscallError("EINVAL", "MADV_COLD on a locked or special mapping")
    split = _split_straddling(k, vma, start, end)
    k.step("mm/madvise.c:madvise_cold", f"{split} large folio(s) split; the rest deactivated")
    return vma


def _free(k: Kernel, prev: VMA | None, vma: VMA, start: int, end: int) -> VMA:
    """Models madvise_free_single_vma(): private anonymous memory only.

    A large folio the range cuts is split first (madvise_free_huge_pmd,
    madvise_free_pte_range). Each exclusive folio wholly in the range is
    then marked lazyfree with clean entries: it stays mapped, and reclaim
    may drop it without swap unless a write dirties it first.
    """
    if not vma.is_anonymous() or vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):
        raise SyscallError("EINVAL", "MADV_FREE needs private anonymous memory")
    _split_straddling(k, vma, start, end)
    large = _large_folios(k, vma, start, end)  # those left: whole or shared
    marked: dict[int, Folio] = {}
    for _, pte in k.pagetable(vma.mm).items(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        if pte.kind != PRESENT or pte.folio == ZERO_PAGE or pte.folio in marked:
            continue
        folio = k.folio(pte.folio)
        inside = not folio.order or large[folio.id][1]
        if inside and _mapped_once(folio) and not folio.shmem:
            marked[folio.id] = folio._replace(lazyfree=True, dirty=False)
    k.put_folios(list(marked.values()))
    k.step("mm/madvise.c:madvise_free_single_vma", f"{len(marked)} folio(s) marked lazyfree")
    return vma


def _mapped_once(folio: Folio) -> bool:
    """Each page mapped exactly once, all by one PMD or each by a PTE."""
    if folio.entire_mapcount:
        return folio.entire_mapcount == 1 and not any(folio.mapcount)
    return folio.total_mapcount == folio.nr_pages


def _remove(k: Kernel, prev: VMA | None, vma: VMA, start: int, end: int) -> VMA:
    """Models madvise_remove(): only shared mappings may punch holes.

    vfs_fallocate(FALLOC_FL_PUNCH_HOLE) reaches shmem_fallocate(): the
    range's file pages are unmapped from every process that maps them
    (unmap_mapping_range), then dropped from the page cache
    (shmem_truncate_range); the next touch faults in a new zeroed page.
    """
    if vma.vm_flags & VM_LOCKED or vma.shmem is None or not vma.vm_flags & VM_SHARED:
        raise SyscallError("EINVAL", "MADV_REMOVE needs a shared, unlocked mapping")
    first = linear_page_index(vma, start)
    count = (end - start) >> PAGE_SHIFT
    unmapped = unmap_mapping_range(k, vma.shmem, first, count)
    dropped = shmem_truncate_range(k, vma.shmem, first, count)
    k.step(
        "mm/shmem.c:shmem_fallocate",
        f"hole punched: {unmapped} entries unmapped in every process, {dropped} pages freed",
    )
    return vma


def _pageout(k: Kernel, prev: VMA | None, vma: VMA, start: int, end: int) -> VMA:
    """Models madvise_pageout() and shrink_folio_list() with no swap device.

    The machines this models have no swap (as the test hosts have none; the
    engine's `swapout()` call reclaims as if one were configured). Large
    folios the range cuts are split first (madvise_cold_or_pageout_pte_range).
    Only folios mapped by this mapping alone, unpinned, are taken: a clean
    lazyfree (MADV_FREE'd) anonymous folio is unmapped and freed, small or
    large (a PMD-mapped THP leaves its deposited table behind as an empty
    PTE table, as the kernel measured does: the next fault there maps a
    small page), and one written since is kept, swap-backed again; a shmem folio is unmapped, then kept in the page cache when
    writing it out fails for want of swap; another large anonymous folio
    is split when folio_alloc_swap() fails (its pages holding no data go
    to the zero page); small ones stay.
    """
    if vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB):
        raise SyscallError("EINVAL", "MADV_PAGEOUT on a locked or special mapping")
    _split_straddling(k, vma, start, end)
    table = k.pagetable(vma.mm)
    pt = k.pt(vma.mm)
    folios: dict[int, Folio] = {}
    unswappable: dict[int, int] = {}  # large anonymous folio -> head vpn
    redirtied: dict[int, Folio] = {}  # lazyfree folios written since: swapbacked again
    dropped = unmapped = 0
    for vpn, pte in table.items(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        if pte.kind != PRESENT or pte.folio == ZERO_PAGE:
            continue
        folio = folios.get(pte.folio) or k.folio(pte.folio)
        if pte.folio not in folios and (folio.maybe_mapped_shared() or folio.maybe_dma_pinned()):
            continue  # mapped elsewhere too, or pinned: not this mapping's to reclaim
        if folio.lazyfree and folio.dirty:
            redirtied[folio.id] = folio._replace(lazyfree=False, dirty=False)
            continue
        if not (folio.lazyfree or folio.shmem is not None):
            if folio.order:
                unswappable.setdefault(folio.id, vpn - pte.page)
            continue
        pt.set(vpn, None)
        if pte.pmd:
            folio = folio._replace(entire_mapcount=0)
        else:
            counts = list(folio.mapcount)
            counts[pte.page] -= 1
            folio = folio._replace(mapcount=tuple(counts))
        folios[folio.id] = folio
        if folio.shmem is None:
            dropped += 1
        else:
            unmapped += 1
    for folio in folios.values():
        if folio.total_mapcount:
            k.put_folio(folio)
        elif folio.shmem is None:
            k.free_folio(folio.id)
        elif folio.dirty:
            k.put_folio(folio)  # shmem_writeout() without swap: redirtied, kept
        else:
            k.put_folio(folio)
            remove_mapping(k, folio)  # clean: __remove_mapping(), a hole again
    k.put_folios(list(redirtied.values()))
    for ident, head in unswappable.items():
        # folio_isolate_lru()'s reference is the caller's.
        split_folio(k, vma, k.folio(ident), head, caller_pins=1)
    k.event(
        "shrink_folio_list",
        f"no swap device: {dropped} lazyfree page(s) discarded, {unmapped} shmem page(s)"
        f" unmapped (the clean ones dropped from the page cache), {len(unswappable)} large"
        " folio(s) split (folio_alloc_swap failed); other anonymous pages stay",
    )
    k.step("mm/madvise.c:madvise_pageout", f"{dropped + unmapped} page(s) reclaimed")
    return vma


def swap_out_range(k: Kernel, vma: VMA, start: int, end: int) -> int:
    """Models reclaim of anonymous folios to swap (shrink_folio_list()).

    With a swap device, each page of an exclusive, unpinned anonymous folio
    becomes a swap entry and the folio is freed.
    Folios mapped more than once or pinned are skipped, as reclaim does.
    """
    split_huge_pmd_edges(k, vma.mm, start, end)
    table = k.pagetable(vma.mm)
    pt = k.pt(vma.mm)
    victims: dict[int, Folio] = {}
    entries = []
    for vpn, pte in table.items(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        if pte.kind != PRESENT or pte.folio == ZERO_PAGE:
            continue
        folio = k.folio(pte.folio)
        if folio.shmem is not None or folio.maybe_mapped_shared() or folio.maybe_dma_pinned():
            continue
        victims[folio.id] = folio
        entries.append((vpn, pte))
    count = 0
    for vpn, _pte in entries:
        pt.set(vpn, Pte(SWAP, k.new_id()))
        count += 1
    for folio in victims.values():
        k.free_folio(folio.id)
    return count


def swap_out(k: Kernel, mm: str, start: int, length: int) -> None:
    """The engine's `swapout(addr, len)`: reclaim a range to a swap device
    (as if one were configured), so a scenario can put swap entries where it
    wants them."""
    end = start + page_align(length)
    vma = find_vma(k.state, mm, start)
    if vma is None or vma.vm_start > start or vma.vm_end < end:
        raise SyscallError("EFAULT", "swapout needs a range inside one VMA")
    count = swap_out_range(k, vma, start, end)
    k.step("mm/vmscan.c:shrink_folio_list", f"{count} pages swapped out")


def install_migration_entries(k: Kernel, mm: str, start: int, length: int) -> None:
    """The engine's `migrate_entry(addr, len)`: freeze a range mid-migration.

    try_to_migrate() has replaced each present entry by a migration entry
    naming its folio; the folio keeps its mapping and index until the
    migration completes (the next fault on it finishes it here).
    """
    end = start + page_align(length)
    vma = find_vma(k.state, mm, start)
    if vma is None or vma.vm_start > start or vma.vm_end < end:
        raise SyscallError("EFAULT", "migrate_entry needs a range inside one VMA")
    table = k.pagetable(mm)
    pt = k.pt(mm)
    count = 0
    for vpn, pte in table.items(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        if pte.kind == PRESENT and pte.folio != ZERO_PAGE and not pte.pmd:
            pt.set(vpn, pte._replace(kind=MIGRATION))
            count += 1
    k.step("mm/rmap.c:try_to_migrate", f"{count} entries are migration entries")


def _populate(k: Kernel, mm: str, start: int, end: int, write: bool) -> None:
    """Models madvise_populate(): fault the range in, VMA by VMA; a hole is
    -ENOMEM, a refused access -EINVAL and a page past the end of a shmem
    object (VM_FAULT_SIGBUS) -EFAULT, after what came before it was
    populated (faultin_page_range() stops there, it does not undo)."""
    addr = start
    while addr < end:
        vma = find_vma(k.state, mm, addr)
        if vma is None or vma.vm_start > addr:
            k.step("mm/madvise.c:madvise_populate", f"populated {start:#x}-{addr:#x}")
            raise SyscallError("ENOMEM", f"{addr:#x} is not mapped")
        if not vma.vm_flags & (VM_WRITE if write else VM_READ):
            # __get_user_pages() with FOLL_MADV_POPULATE: check_vma_flags()
            # failing is -EINVAL, and a read needs VM_READ itself.
            k.step("mm/madvise.c:madvise_populate", f"populated {start:#x}-{addr:#x}")
            raise SyscallError("EINVAL", "check_vma_flags: the mapping does not allow the access")
        hi = min(vma.vm_end, end)
        failed = faultin_page_range(k, vma, addr, hi, write)
        if failed is not None:
            k.step("mm/madvise.c:madvise_populate", f"populated {start:#x}-{failed:#x}")
            raise SyscallError("EFAULT", f"{failed:#x} is past the end of the shmem object")
        addr = hi
    k.step("mm/madvise.c:madvise_populate", f"populated {start:#x}-{end:#x}")
