"""Page faults, COW, zapping and freeing page tables.

Models mm/memory.c (handle_mm_fault, do_anonymous_page, do_wp_page,
do_swap_page, zap_pte_range, free_pgtables) and mm/pt_reclaim.c; the THP
cases are mm/huge_memory.c's (engine.huge_memory). A write fault is where a VMA gets its anon_vma;
the folio it allocates takes that anon_vma as its mapping and
linear_page_index() as its index, which is what rmap relies on later.
"""

from __future__ import annotations

from engine.huge_memory import (
    do_huge_pmd_wp_page,
    map_anon_folio_pmd,
    map_huge_zero_pmd,
    note_thps_mapped,
    split_huge_pmd_edges,
    thp_eligible,
    thp_vma_suitable,
)
from engine.mm_constants import HPAGE_PMD_NR, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE
from engine.mm_types import VM_EXEC, VM_HUGEPAGE, VM_READ, VM_WRITE, VMA, Folio, FolioRun
from engine.pagemap import linear_page_index
from engine.pagetable import (
    MIGRATION,
    PGD_SHIFT,
    PMD_SHIFT,
    PRESENT,
    PUD_SHIFT,
    SWAP,
    ZERO_PAGE,
    PageTableEditor,
    Pte,
    PteRun,
)
from engine.rmap import anon_vma_prepare, folio_move_anon_rmap, new_folio, rmap_walk_anon
from engine.shmem import shmem_fault
from engine.sim.kernel import Kernel
from engine.vma import expand_downwards, find_mergeable_anon_vma, find_vma


def _unmap_page(k: Kernel, folios: dict[int, Folio], pte: Pte) -> None:
    """Drop one PTE mapping of a folio (folio_remove_rmap_pte), batched."""
    if pte.folio == ZERO_PAGE or pte.kind != PRESENT:
        return
    folio = folios.get(pte.folio) or k.folio(pte.folio)
    if pte.pmd:
        folio = folio._replace(entire_mapcount=folio.entire_mapcount - 1)
    else:
        counts = list(folio.mapcount)
        counts[pte.page] -= 1
        folio = folio._replace(mapcount=tuple(counts))
    folios[folio.id] = folio


def _settle(k: Kernel, folios: dict[int, Folio]) -> None:
    """Store batched folio changes; free folios nothing maps or pins."""
    keep = []
    for folio in folios.values():
        if folio.total_mapcount == 0 and folio.pincount == 0 and folio.shmem is None:
            k.free_folio(folio.id)
        else:
            keep.append(folio)
    k.put_folios(keep)


def zap_page_range(k: Kernel, mm: str, start: int, end: int, reclaim_pt: bool) -> int:
    """Models mm/memory.c:zap_page_range_single() / unmap_vmas(): clear the
    entries of [start, end), dropping mapcounts and freeing unused folios.

    A huge PMD only partly in the range is split first; one wholly inside
    drops the folio's one PMD mapping (zap_huge_pmd: entire_mapcount once,
    not once per page it covers) and frees the PTE table deposited with it
    (zap_deposited_table), so the PMD is none again. Other PTE tables stay,
    empty or not, for free_pgtables(), except with `reclaim_pt`
    (MADV_DONTNEED's zap_details.reclaim_pt under CONFIG_PT_RECLAIM): then
    zap_pte_range() frees each table the range covers whole
    (reclaim_pt_is_enabled(): the table's part of the range is PMD_SIZE;
    free_pte()). Returns how many entries were cleared.
    """
    split_huge_pmd_edges(k, mm, start, end)
    table = k.pagetable(mm)
    pt = k.pt(mm)
    folios: dict[int, Folio] = {}
    cleared = 0
    lo, hi = start >> PAGE_SHIFT, end >> PAGE_SHIFT
    for vpn, pte in table.items(lo, hi):
        if not pte.pmd or not vpn & (HPAGE_PMD_NR - 1):
            _unmap_page(k, folios, pte)
        pt.set(vpn, None)
        cleared += 1
    for pmd in table.pmd_indexes(lo, hi):
        whole = lo <= pmd << PMD_SHIFT and (pmd + 1) << PMD_SHIFT <= hi
        head = table.get(pmd << PMD_SHIFT)
        if whole and (reclaim_pt or (head is not None and head.pmd)):
            pt.free_table(pmd)
    _settle(k, folios)
    return cleared


_ULONG = (1 << 64) - 1
_PUD_SIZE = 1 << (PUD_SHIFT + PAGE_SHIFT)
_PGDIR_SIZE = 1 << (PGD_SHIFT + PAGE_SHIFT)


def _below(a: int, b: int) -> bool:
    """`a - 1 > b - 1` in unsigned long arithmetic: 0 is the top."""
    return (a - 1) & _ULONG > (b - 1) & _ULONG


def free_pgtables(k: Kernel, mm: str, vmas: list[VMA], floor: int, ceiling: int) -> None:
    """Models mm/memory.c:free_pgtables(): free the page tables of the VMAs
    an unmap removes (their entries already zapped), between `floor` (the
    end of the VMA before them, vms->unmap_start) and `ceiling` (the start
    of the one after, vms->unmap_end; 0 for none, USER_PGTABLES_CEILING).

    VMAs less than PMD_SIZE apart are freed in one call down. A table is
    freed only when no VMA outside the range can use it: a PTE table shared
    with a neighbouring VMA stays, empty, and with it the PMD and PUD
    tables above it (free_pgd_range).
    """
    i = 0
    while i < len(vmas):
        j = i
        while j + 1 < len(vmas) and vmas[j + 1].vm_start <= vmas[j].vm_end + PMD_SIZE:
            j += 1
        top = vmas[j + 1].vm_start if j + 1 < len(vmas) else ceiling
        free_pgd_range(k, mm, vmas[i].vm_start, vmas[j].vm_end, floor, top)
        i = j + 1


def free_pgd_range(k: Kernel, mm: str, addr: int, end: int, floor: int, ceiling: int) -> None:
    """Models mm/memory.c:free_pgd_range() and free_pud_range() /
    free_pmd_range() / free_pte_range() below it (4-level paging: the P4D
    is folded). The range is rounded out to whole PTE tables where floor
    and ceiling allow; a PMD or PUD table goes too when all it covers lies
    between floor and ceiling."""
    addr &= ~(PMD_SIZE - 1)
    if addr < floor:
        addr += PMD_SIZE
    if ceiling:
        ceiling &= ~(PMD_SIZE - 1)
        if not ceiling:
            return
    if _below(end, ceiling):
        end -= PMD_SIZE
    if addr > (end - 1) & _ULONG:
        return
    table = k.pagetable(mm)
    pt = k.pt(mm)
    for pgd in table.pgd_indexes(addr >> PAGE_SHIFT, end >> PAGE_SHIFT):
        base = pgd << (PGD_SHIFT + PAGE_SHIFT)
        lo, hi = max(addr, base), min(end, base + _PGDIR_SIZE)
        for pud in table.pud_indexes(lo >> PAGE_SHIFT, hi >> PAGE_SHIFT):
            pud_base = pud << (PUD_SHIFT + PAGE_SHIFT)
            pud_lo, pud_hi = max(lo, pud_base), min(hi, pud_base + _PUD_SIZE)
            for pmd in table.pmd_indexes(pud_lo >> PAGE_SHIFT, pud_hi >> PAGE_SHIFT):
                pt.free_table(pmd)
            if _covers(pud_lo, pud_hi, _PUD_SIZE, floor, ceiling):
                pt.free_pmd_table(pud)
        if _covers(lo, hi, _PGDIR_SIZE, floor, ceiling):
            pt.free_pud_table(pgd)


def _covers(start: int, end: int, size: int, floor: int, ceiling: int) -> bool:
    """free_pmd_range()'s and free_pud_range()'s test: does the table
    covering [start, end) (`size` bytes of address space) lie between floor
    and ceiling, so that no other VMA can be using it?"""
    start &= ~(size - 1)
    if start < floor:
        return False
    if ceiling:
        ceiling &= ~(size - 1)
        if not ceiling:
            return False
    return not _below(end, ceiling)


def unmap_mapping_range(k: Kernel, shmem: int, first: int, count: int) -> int:
    """Models mm/memory.c:unmap_mapping_range(): zap [first, first + count)
    of a shmem object's pages in every VMA that maps them, in every
    process (the i_mmap tree: each VMA whose pgoff range overlaps).
    Returns how many entries were cleared."""
    cleared = 0
    for vma in list(k.state.vmas.values()):
        if vma.shmem != shmem:
            continue
        lo = max(first, vma.vm_pgoff)
        hi = min(first + count, vma.vm_pgoff + vma.pages)
        if lo < hi:
            start = vma.vm_start + ((lo - vma.vm_pgoff) << PAGE_SHIFT)
            end = start + ((hi - lo) << PAGE_SHIFT)
            cleared += zap_page_range(k, vma.mm, start, end, reclaim_pt=False)
    return cleared


def access_allowed(vma: VMA, write: bool) -> bool:
    """Models arch_vma_access_permitted() and the VM_WRITE/VM_READ checks
    of lock_mm_and_find_vma(): on x86-64 write and exec imply read."""
    if write:
        return bool(vma.vm_flags & VM_WRITE)
    return bool(vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC))


def handle_mm_fault(k: Kernel, mm: str, addr: int, write: bool) -> str:
    """Models mm/memory.c:handle_mm_fault() for one page of one process.

    Returns "ok", "SIGSEGV" (no VMA, or an access the VMA forbids) or
    "SIGBUS" (past the end of a shmem object).
    """
    vma = find_vma(k.state, mm, addr)
    if vma is not None and addr < vma.vm_start:
        vma = expand_downwards(k, mm, addr)
    if vma is None:
        k.event("lock_mm_and_find_vma", f"no VMA at {addr:#x}: SIGSEGV")
        return "SIGSEGV"
    if not access_allowed(vma, write):
        k.event(
            "access_error", f"vma#{vma.id} does not allow {'write' if write else 'read'}: SIGSEGV"
        )
        return "SIGSEGV"
    if vma.shmem is not None:
        return do_fault(k, vma, addr, write)
    return fault_anon_range(k, vma, addr, addr + PAGE_SIZE, write)


def do_fault(k: Kernel, vma: VMA, addr: int, write: bool) -> str:
    """Models mm/memory.c:do_fault() for a shmem mapping: a read fault on
    an empty entry maps what the page cache holds around addr first
    (do_read_fault, do_fault_around); shmem_fault() handles the page itself."""
    if not write and k.pt(vma.mm).get(addr >> PAGE_SHIFT) is None:
        do_fault_around(k, vma, addr)
    return shmem_fault(k, vma, addr, write)


def do_fault_around(k: Kernel, vma: VMA, addr: int) -> None:
    """Models mm/memory.c:do_fault_around() and filemap_map_pages() for a
    read fault in a shmem mapping: the pages the page cache already holds
    within fault_around_bytes (machine profile) around addr, aligned, in
    the same PTE table and the VMA, are mapped too where nothing is."""
    assert vma.shmem is not None
    obj = k.state.shmem[vma.shmem]
    nr = k.profile.fault_around_bytes >> PAGE_SHIFT
    if nr <= 1:
        return
    pt = k.pt(vma.mm)
    vpn = addr >> PAGE_SHIFT
    pte_off = vpn & (HPAGE_PMD_NR - 1)
    vma_off = (addr - vma.vm_start) >> PAGE_SHIFT
    first = max(pte_off & ~(nr - 1), pte_off - min(pte_off, vma_off))
    last = min(first + nr, HPAGE_PMD_NR, pte_off + vma.pages - vma_off)
    base = vpn - pte_off
    mapped = []
    for off in range(first, last):
        at = (base + off) << PAGE_SHIFT
        index = linear_page_index(vma, at)
        folio_id = obj.cache.get(index)
        if folio_id is None or pt.get(base + off) is not None:
            continue
        folio = k.folio(folio_id)
        k.put_folio(folio._replace(mapcount=(folio.mapcount[0] + 1,)))
        pt.set(base + off, Pte(PRESENT, folio_id, 0, write=False))
        mapped.append(index)
    if mapped:
        k.event("do_fault_around", f"{len(mapped)} cached page(s) mapped around {addr:#x}")


def fault_anon_range(k: Kernel, vma: VMA, start: int, end: int, write: bool) -> str:
    """Fault every page of [start, end) inside one private anonymous VMA.

    Each page goes the way handle_mm_fault() sends it: do_anonymous_page()
    (or a THP for a whole aligned 2 MiB), do_swap_page(), do_wp_page(), or
    nothing when the mapping already allows the access. Runs of untouched
    pages are handled in bulk, as one batch.
    """
    pt = k.pt(vma.mm)
    addr = start
    new: list[tuple[int, int, bool]] = []  # (vpn, pages, huge) of fresh anonymous faults
    huge_ok = k.profile.thp_enabled == "always" or bool(vma.vm_flags & VM_HUGEPAGE)
    refused: set[int] = set()  # PMDs a THP could have used but for their page table
    while addr < end:
        vpn = addr >> PAGE_SHIFT
        if write and not huge_ok and not vpn & (HPAGE_PMD_NR - 1) and pt.table_is_none(vpn >> 9):
            # A whole untouched page table: every page in it is pte_none.
            last = min(end, (vpn + HPAGE_PMD_NR) << PAGE_SHIFT) >> PAGE_SHIFT
            _add_pages(new, vpn, last - vpn)
            addr = last << PAGE_SHIFT
            continue
        pte = pt.get(vpn)
        if pte is None:
            if thp_eligible(k, vma, addr):
                if write or not k.profile.thp_use_zero_page:
                    new.append((vpn & ~(HPAGE_PMD_NR - 1), 1, True))
                else:
                    # vmf_anon_prepare() comes first, read or write: a read that
                    # maps the huge zero page leaves the VMA with an anon_vma.
                    if vma.anon_vma is None:
                        vma = anon_vma_prepare(k, vma, find_mergeable_anon_vma(k, vma))
                    map_huge_zero_pmd(k, vma, vpn)
                addr = ((vpn | (HPAGE_PMD_NR - 1)) + 1) << PAGE_SHIFT
                continue
            if huge_ok and vpn >> 9 not in refused and thp_vma_suitable(k, vma, addr):
                refused.add(vpn >> 9)
                _note_table_in_the_way(k, vma, vpn >> 9)
            if write:
                _add_pages(new, vpn, 1)
            else:
                pt.set(vpn, Pte(PRESENT, ZERO_PAGE, 0, write=False))
        else:
            if new:
                vma = _fault_new(k, vma, new)
                new = []
            vma = _fault_existing(k, vma, addr, pte, write)
        addr += PAGE_SIZE
    if new:
        _fault_new(k, vma, new)
    return "ok"


def _note_table_in_the_way(k: Kernel, vma: VMA, pmd: int) -> None:
    """Why a fault a THP could serve maps a small page: the PMD is not none."""
    leaf = k.pt(vma.mm).leaf(pmd)
    empty = " (empty)" if leaf is not None and not leaf else ""
    k.event(
        "__handle_mm_fault",
        f"PMD at {pmd << (9 + PAGE_SHIFT):#x} has a PTE table{empty}: not pmd_none,"
        " so no THP: small pages",
    )


def _add_pages(new: list[tuple[int, int, bool]], vpn: int, count: int) -> None:
    """Add small pages vpn ... vpn + count - 1 to a batch of fresh faults."""
    if new and not new[-1][2] and new[-1][0] + new[-1][1] == vpn:
        new[-1] = (new[-1][0], new[-1][1] + count, False)
    else:
        new.append((vpn, count, False))


def _fault_new(k: Kernel, vma: VMA, pages: list[tuple[int, int, bool]]) -> VMA:
    """Models do_anonymous_page() / do_huge_pmd_anonymous_page() for a batch
    of untouched pages: prepare the anon_vma once, allocate, map writable.

    Consecutive small pages get consecutive folio ids and indexes: they are
    stored as FolioRuns, and a PTE table they fill from empty as a PteRun.
    """
    if vma.anon_vma is None:
        vma = anon_vma_prepare(k, vma, find_mergeable_anon_vma(k, vma))
    pt = k.pt(vma.mm)
    ident = k.new_ids(sum(count for _, count, _ in pages)).start
    huge: list[Folio] = []
    runs: list[FolioRun] = []
    small = thps = 0
    base_index = vma.vm_pgoff - (vma.vm_start >> PAGE_SHIFT)
    # Stored in id order: what the step created lists them in that order.
    for vpn, count, is_huge in pages:
        if is_huge:
            if runs:
                small += _store_runs(k, pt, runs, base_index)
            huge.append(map_anon_folio_pmd(k, vma, ident, vpn))
            thps += 1
        else:
            if huge:
                k.put_folios(huge)
                huge = []
            runs.append(FolioRun(ident, count, vma.anon_vma, base_index + vpn))
        ident += count
    small += _store_runs(k, pt, runs, base_index)
    if small:
        k.event(
            "do_anonymous_page",
            f"{small} new folio(s) in anon_vma#{vma.anon_vma}, index = linear_page_index",
        )
    k.put_folios(huge)
    if thps:
        note_thps_mapped(k, vma, thps)
    return vma


def _store_runs(k: Kernel, pt: PageTableEditor, runs: list[FolioRun], base_index: int) -> int:
    """Map and store the runs of new small folios (then empties the list);
    returns how many folios they hold."""
    for run in runs:
        _map_run(pt, run, run.index - base_index)
    k.put_folio_runs(runs)
    count = sum(run.nr for run in runs)
    runs.clear()
    return count


def _map_run(pt: PageTableEditor, run: FolioRun, vpn: int) -> None:
    """set_pte_at() of a writable entry for each folio of `run`, from page
    `vpn` on: a PTE table filled from empty is one PteRun."""
    end = vpn + run.nr
    while vpn < end:
        pmd = vpn >> 9
        hi = min(end, (pmd + 1) << 9)
        first = run.first + vpn - (end - run.nr)
        if pt.table_is_none(pmd):
            pt.fill_run(pmd, PteRun(vpn & (HPAGE_PMD_NR - 1), hi - (pmd << 9), first, True))
        else:
            for i in range(hi - vpn):
                pt.set(vpn + i, Pte(PRESENT, first + i, 0, True))
        vpn = hi


def _fault_existing(k: Kernel, vma: VMA, addr: int, pte: Pte, write: bool) -> VMA:
    """A fault on a page that has an entry: swap-in, migration wait, COW."""
    pt = k.pt(vma.mm)
    vpn = addr >> PAGE_SHIFT
    if pte.kind == SWAP:
        if vma.anon_vma is None:
            vma = anon_vma_prepare(k, vma, find_mergeable_anon_vma(k, vma))
        ident = k.new_id()
        k.put_folio(new_folio(k, ident, 0, vma, addr))
        pt.set(vpn, Pte(PRESENT, ident, 0, write=write))
        k.event(
            "do_swap_page", f"swapped in at {addr:#x}: new folio#{ident} in anon_vma#{vma.anon_vma}"
        )
        return vma
    if pte.kind == MIGRATION:
        pt.set(vpn, pte._replace(kind=PRESENT))
        k.event("migration_entry_wait", f"migration of folio#{pte.folio} completes at {addr:#x}")
        pte = pt.get(vpn) or pte
    if write and pte.folio != ZERO_PAGE:
        folio = k.folio(pte.folio)
        if folio.lazyfree and not folio.dirty:
            # The write dirties the entry MADV_FREE cleaned: reclaim keeps the folio.
            k.put_folio(folio._replace(dirty=True))
            k.event("do_wp_page", f"write to MADV_FREE'd folio#{folio.id}: dirty, kept")
    if not write or pte.write:
        return vma
    return do_wp_page(k, vma, addr, pte)


def do_wp_page(k: Kernel, vma: VMA, addr: int, pte: Pte) -> VMA:
    """Models mm/memory.c:do_wp_page(): a write to a read-only present page.

    An exclusive anonymous page is reused; a folio only this mapping holds
    (wp_can_reuse_anon_folio) is reused after folio_move_anon_rmap() (so
    rmap looks only in this VMA's anon_vma), and only the written page
    becomes AnonExclusive; anything else (shared after
    fork, the zero page, the last mapped page of a large folio) is copied
    into a new exclusive folio in this VMA's anon_vma (wp_page_copy).
    """
    pt = k.pt(vma.mm)
    vpn = addr >> PAGE_SHIFT
    if pte.pmd:
        # wp_huge_pmd(): do_huge_zero_wp_pmd() needs the anon_vma first.
        if pte.folio == ZERO_PAGE and vma.anon_vma is None:
            vma = anon_vma_prepare(k, vma, find_mergeable_anon_vma(k, vma))
        fallback = do_huge_pmd_wp_page(k, vma, addr, pte)
        if fallback is None:
            return vma
        pte = fallback
    if pte.folio != ZERO_PAGE:
        folio = k.folio(pte.folio)
        if folio.anon_exclusive[pte.page]:
            pt.set(vpn, pte._replace(write=True))
            return vma
        if wp_can_reuse_anon_folio(k, folio, vma):
            folio = folio_move_anon_rmap(k, folio, vma)
            # SetPageAnonExclusive() of the faulting page only: the folio's
            # other pages stay shared-looking until each is written.
            exclusive = list(folio.anon_exclusive)
            exclusive[pte.page] = True
            k.put_folio(folio._replace(anon_exclusive=tuple(exclusive)))
            pt.set(vpn, pte._replace(write=True))
            k.event(
                "wp_can_reuse_anon_folio",
                f"folio#{folio.id} only mapped here: reused, moved to anon_vma#{vma.anon_vma}",
            )
            return vma
    if vma.anon_vma is None:
        vma = anon_vma_prepare(k, vma, find_mergeable_anon_vma(k, vma))
    folios: dict[int, Folio] = {}
    _unmap_page(k, folios, pte)
    _settle(k, folios)
    ident = k.new_id()
    k.put_folio(new_folio(k, ident, 0, vma, addr))
    pt.set(vpn, Pte(PRESENT, ident, 0, write=True))
    what = "zero page" if pte.folio == ZERO_PAGE else f"shared folio#{pte.folio}"
    k.event(
        "wp_page_copy", f"COW of {what} at {addr:#x}: new folio#{ident} in anon_vma#{vma.anon_vma}"
    )
    return vma


def wp_can_reuse_anon_folio(k: Kernel, folio: Folio, vma: VMA) -> bool:
    """Models mm/memory.c:wp_can_reuse_anon_folio(): may a write reuse a
    folio whose page is not AnonExclusive?

    A small folio only when nothing else references it (mapped once, no
    pin). A large one (__wp_can_reuse_large_anon_folio) when it is mapped
    more than once, all by this process (FOLIO_MM_IDS_SHARED clear), and
    its mappings are its only references: with one page left mapped, the
    kernel copies that page so the rest of the folio can be freed.
    """
    if folio.maybe_dma_pinned():
        return False
    if not folio.order:
        return folio.total_mapcount == 1
    if folio.total_mapcount <= 1 or folio.entire_mapcount:
        return False
    return not folio.maybe_mapped_shared() and not _mapped_by_another_mm(k, folio, vma.mm)


def _mapped_by_another_mm(k: Kernel, folio: Folio, mm: str) -> bool:
    """What the folio's FOLIO_MM_IDS_SHARED bit says: a process other than
    mm maps some page of it (found by rmap_walk_anon; the folio's mm ids
    are not the walk's, so a COW-context walk does not stop early here)."""
    for other, addr in rmap_walk_anon(k.state, folio, exclusive_stop=False):
        if other.mm == mm:
            continue
        lo = addr >> PAGE_SHIFT
        for _, pte in k.pagetable(other.mm).items(lo, lo + folio.nr_pages):
            if pte.kind == PRESENT and pte.folio == folio.id:
                return True
    return False
