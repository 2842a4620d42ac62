"""Page faults, COW, zapping and huge PMDs.

Models mm/memory.c (handle_mm_fault, do_anonymous_page, do_wp_page,
do_swap_page, zap_pte_range) and the parts of mm/huge_memory.c that decide
and split PMD-mapped THPs. A write fault is where a VMA gets its anon_vma;
the folio it allocates takes that anon_vma as its mapping and
linear_page_index() as its index, which is what rmap relies on later.
"""

from __future__ import annotations

from dataclasses import replace

from engine.kernel import Kernel
from engine.mm_types import (
    HPAGE_PMD_NR,
    HPAGE_PMD_ORDER,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGEPAGE,
    VM_NOHUGEPAGE,
    VM_READ,
    VM_WRITE,
    VMA,
    Folio,
)
from engine.pagetable import MIGRATION, PRESENT, SWAP, ZERO_PAGE, Pte
from engine.rmap import anon_vma_prepare, folio_move_anon_rmap
from engine.scenario.constants import PAGE_SHIFT, PAGE_SIZE
from engine.vma import find_vma, vma_before

STACK_GUARD_GAP = 256 << PAGE_SHIFT  # stack_guard_gap: 256 pages


def linear_page_index(vma: VMA, addr: int) -> int:
    """Models include/linux/pagemap.h:linear_page_index(): addr's pgoff."""
    return ((addr - vma.vm_start) >> PAGE_SHIFT) + vma.vm_pgoff


def vma_address(vma: VMA, pgoff: int, nr_pages: int) -> int | None:
    """Models mm/internal.h:vma_address(): where pgoff lies in vma, if it does."""
    if pgoff >= vma.vm_pgoff:
        addr = vma.vm_start + ((pgoff - vma.vm_pgoff) << PAGE_SHIFT)
        return addr if vma.vm_start <= addr < vma.vm_end else None
    if pgoff + nr_pages - 1 >= vma.vm_pgoff:
        return vma.vm_start
    return None


def new_folio(
    k: Kernel, ident: int, order: int, vma: VMA | None, addr: int, exclusive: bool = True
) -> Folio:
    """Models folio_add_new_anon_rmap(): a new anonymous folio's rmap fields.

    mapping = vma->anon_vma (an exclusive folio) and index =
    linear_page_index(vma, addr): the pair an rmap walk starts from. The
    folio starts mapped once on every page (the caller maps it).
    """
    nr = 1 << order
    assert vma is not None
    return Folio(
        id=ident,
        order=order,
        mapping=vma.anon_vma,
        index=linear_page_index(vma, addr),
        mapcount=(1,) * nr if order == 0 else (0,) * nr,
        anon_exclusive=(exclusive,) * nr,
        entire_mapcount=1 if order else 0,
    )


def thp_eligible(k: Kernel, vma: VMA, addr: int) -> bool:
    """Models the checks of do_huge_pmd_anonymous_page()'s caller.

    The machine profile's THP mode decides (engine.machine): "madvise"
    needs VM_HUGEPAGE, "always" only not VM_NOHUGEPAGE, "never" none; the
    aligned 2 MiB around addr must lie inside the VMA, and no PTE table
    may exist there yet (the PMD is none).
    """
    mode = k.profile.thp_enabled
    wanted = mode == "always" or (mode == "madvise" and vma.vm_flags & VM_HUGEPAGE)
    if not wanted or vma.vm_flags & VM_NOHUGEPAGE or not vma.is_anonymous():
        return False
    haddr = addr & ~((HPAGE_PMD_NR << PAGE_SHIFT) - 1)
    if haddr < vma.vm_start or haddr + (HPAGE_PMD_NR << PAGE_SHIFT) > vma.vm_end:
        return False
    return k.pt(vma.mm).table_is_none(haddr >> (PAGE_SHIFT + HPAGE_PMD_ORDER))


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


def split_huge_pmd(k: Kernel, mm: str, haddr: int) -> bool:
    """Models mm/huge_memory.c:__split_huge_pmd(): map a THP by 512 PTEs.

    The folio stays large; its PMD mapping becomes one PTE mapping per
    page. Returns whether there was a huge PMD to split.
    """
    pt = k.pt(mm)
    base = haddr >> PAGE_SHIFT
    head = pt.get(base)
    if head is None or not head.pmd:
        return False
    for i in range(HPAGE_PMD_NR):
        entry = pt.get(base + i)
        assert entry is not None
        pt.set(base + i, entry._replace(pmd=False))
    if head.folio != ZERO_PAGE and head.kind == PRESENT:
        folio = k.folio(head.folio)
        k.put_folio(
            folio._replace(
                entire_mapcount=folio.entire_mapcount - 1,
                mapcount=tuple(c + 1 for c in folio.mapcount),
            )
        )
    k.event("__split_huge_pmd", f"PMD at {haddr:#x} split into {HPAGE_PMD_NR} PTEs")
    return True


def split_huge_pmd_address(k: Kernel, vma: VMA, addr: int) -> None:
    """Models split_huge_pmd_address(): a VMA boundary at addr cannot cut
    through a PMD mapping, so split one that straddles it."""
    size = HPAGE_PMD_NR << PAGE_SHIFT
    if addr % size:
        split_huge_pmd(k, vma.mm, addr & ~(size - 1))


def split_huge_pmd_edges(k: Kernel, mm: str, start: int, end: int) -> None:
    """Split the huge PMDs that [start, end) covers only in part, as zap and
    reclaim do before working page by page (__split_huge_pmd at each edge)."""
    size = HPAGE_PMD_NR << PAGE_SHIFT
    for edge in (start, end):
        if edge % size:
            split_huge_pmd(k, mm, edge & ~(size - 1))


def zap_page_range(k: Kernel, mm: str, start: int, end: int) -> int:
    """Models mm/memory.c:zap_page_range_single() / unmap_vmas(): clear the
    entries of [start, end), dropping mapcounts and freeing unused folios.

    A huge PMD only partly in the range is split first. Returns how many
    entries were cleared.
    """
    split_huge_pmd_edges(k, mm, start, end)
    table = k.pagetable(mm)
    pt = k.pt(mm)
    folios: dict[int, Folio] = {}
    cleared = 0
    for vpn, pte in table.items(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        _unmap_page(k, folios, pte)
        pt.set(vpn, None)
        cleared += 1
    _settle(k, folios)
    return cleared


def access_allowed(vma: VMA, write: bool) -> bool:
    """Models arch_vma_access_permitted() and the VM_WRITE/VM_READ checks
    of lock_mm_and_find_vma(): on x86-64 write and exec imply read."""
    if write:
        return bool(vma.vm_flags & VM_WRITE)
    return bool(vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC))


def expand_stack(k: Kernel, mm: str, addr: int) -> VMA | None:
    """Models mm/mmap.c:expand_downwards(): a fault just below a
    VM_GROWSDOWN VMA grows it, if the stack guard gap to prev allows."""
    vma = find_vma(k.state, mm, addr)
    if vma is None or not vma.vm_flags & VM_GROWSDOWN:
        return None
    addr &= ~(PAGE_SIZE - 1)
    prev = vma_before(k.state, mm, vma.vm_start)
    if prev is not None and addr - prev.vm_end < STACK_GUARD_GAP:
        return None
    vma = anon_vma_prepare(k, vma)
    grow = (vma.vm_start - addr) >> PAGE_SHIFT
    vma = k.put_vma(replace(vma, vm_start=addr, vm_pgoff=vma.vm_pgoff - grow))
    k.sort_vmas(mm)
    k.event("expand_downwards", f"stack vma#{vma.id} grows down to {addr:#x}")
    return vma


def handle_mm_fault(k: Kernel, mm: str, addr: int, write: bool) -> str:
    """Models mm/memory.c:handle_mm_fault() for one page of one process.

    Returns "ok", "SIGSEGV" (no VMA, or an access the VMA forbids) or
    "SIGBUS" (past the end of a shmem object).
    """
    vma = find_vma(k.state, mm, addr)
    if vma is not None and addr < vma.vm_start:
        vma = expand_stack(k, mm, addr)
    if vma is None:
        k.event("lock_mm_and_find_vma", f"no VMA at {addr:#x}: SIGSEGV")
        return "SIGSEGV"
    if not access_allowed(vma, write):
        k.event(
            "access_error", f"vma#{vma.id} does not allow {'write' if write else 'read'}: SIGSEGV"
        )
        return "SIGSEGV"
    if vma.shmem is not None:
        return shmem_fault(k, vma, addr, write)
    return fault_anon_range(k, vma, addr, addr + PAGE_SIZE, write)


def shmem_fault(k: Kernel, vma: VMA, addr: int, write: bool) -> str:
    """Models mm/shmem.c:shmem_fault(): find or allocate the page-cache
    folio at the page's file index and map it (shared, no anon_vma)."""
    assert vma.shmem is not None
    obj = k.state.shmem[vma.shmem]
    index = linear_page_index(vma, addr)
    if index >= obj.pages:
        k.event("shmem_fault", f"index {index} beyond the object's {obj.pages} pages: SIGBUS")
        return "SIGBUS"
    pt = k.pt(vma.mm)
    vpn = addr >> PAGE_SHIFT
    pte = pt.get(vpn)
    if pte is not None:
        if write and not pte.write:
            pt.set(vpn, pte._replace(write=True))
        return "ok"
    if not write:
        do_fault_around(k, vma, addr)
        if pt.get(vpn) is not None:
            return "ok"
    folio_id = obj.cache.get(index)
    if folio_id is None:
        folio_id = k.new_id()
        folio = Folio(folio_id, 0, None, index, (1,), (False,), shmem=obj.id)
        k.put_shmem(replace(obj, cache=obj.cache.set(index, folio_id)))
    else:
        folio = k.folio(folio_id)
        folio = folio._replace(mapcount=(folio.mapcount[0] + 1,))
    k.put_folio(folio)
    pt.set(vpn, Pte(PRESENT, folio_id, 0, write=bool(vma.vm_flags & VM_WRITE)))
    return "ok"


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
    new: list[tuple[int, bool]] = []  # (vpn, huge) of fresh anonymous faults
    huge_ok = k.profile.thp_enabled == "always" or bool(vma.vm_flags & VM_HUGEPAGE)
    while addr < end:
        vpn = addr >> PAGE_SHIFT
        if write and not huge_ok and not vpn & (HPAGE_PMD_NR - 1) and pt.table_is_none(vpn >> 9):
            # A whole untouched page table: every page in it is pte_none.
            last = min(end, (vpn + HPAGE_PMD_NR) << PAGE_SHIFT) >> PAGE_SHIFT
            new.extend((v, False) for v in range(vpn, last))
            addr = last << PAGE_SHIFT
            continue
        pte = pt.get(vpn)
        if pte is None:
            if thp_eligible(k, vma, addr):
                if write or not k.profile.thp_use_zero_page:
                    new.append((vpn & ~(HPAGE_PMD_NR - 1), True))
                else:
                    # vmf_anon_prepare() comes first, read or write: a read that
                    # maps the huge zero page leaves the VMA with an anon_vma.
                    if vma.anon_vma is None:
                        vma = anon_vma_prepare(k, vma)
                    base = vpn & ~(HPAGE_PMD_NR - 1)
                    for i in range(HPAGE_PMD_NR):
                        pt.set(base + i, Pte(PRESENT, ZERO_PAGE, 0, write=False, pmd=True))
                    k.event(
                        "do_huge_pmd_anonymous_page",
                        f"read: huge zero page at {base << PAGE_SHIFT:#x}",
                    )
                addr = ((vpn | (HPAGE_PMD_NR - 1)) + 1) << PAGE_SHIFT
                continue
            if write:
                new.append((vpn, False))
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


def _fault_new(k: Kernel, vma: VMA, pages: list[tuple[int, bool]]) -> VMA:
    """Models do_anonymous_page() / do_huge_pmd_anonymous_page() for a batch
    of untouched pages: prepare the anon_vma once, allocate, map writable."""
    if vma.anon_vma is None:
        vma = anon_vma_prepare(k, vma)
    pt = k.pt(vma.mm)
    ids = k.new_ids(len(pages))
    folios = []
    small = huge = 0
    fill: dict[int, dict[int, Pte]] = {}  # new PTE tables, filled in one go
    mapped, exclusive = (1,), (True,)
    base_index = vma.vm_pgoff - (vma.vm_start >> PAGE_SHIFT)
    for ident, (vpn, is_huge) in zip(ids, pages, strict=True):
        if is_huge:
            folios.append(new_folio(k, ident, HPAGE_PMD_ORDER, vma, vpn << PAGE_SHIFT))
            for i in range(HPAGE_PMD_NR):
                pt.set(vpn + i, Pte(PRESENT, ident, i, write=True, pmd=True))
            huge += 1
            continue
        # new_folio() inlined: this loop runs once per page of a large memset.
        folios.append(Folio(ident, 0, vma.anon_vma, base_index + vpn, mapped, exclusive))
        table = fill.get(vpn >> 9)
        if table is None and pt.table_is_none(vpn >> 9):
            table = fill[vpn >> 9] = {}
        if table is None:
            pt.set(vpn, Pte(PRESENT, ident, 0, True))
        else:
            table[vpn & (HPAGE_PMD_NR - 1)] = Pte(PRESENT, ident, 0, True)
        small += 1
    for pmd, entries in fill.items():
        pt.fill_table(pmd, entries)
    k.put_folios(folios)
    if small:
        k.event(
            "do_anonymous_page",
            f"{small} new folio(s) in anon_vma#{vma.anon_vma}, index = linear_page_index",
        )
    if huge:
        k.event(
            "do_huge_pmd_anonymous_page", f"{huge} THP(s) mapped by PMD in anon_vma#{vma.anon_vma}"
        )
    return vma


def _fault_existing(k: Kernel, vma: VMA, addr: int, pte: Pte, write: bool) -> VMA:
    """A fault on a page that has an entry: swap-in, migration wait, COW."""
    pt = k.pt(vma.mm)
    vpn = addr >> PAGE_SHIFT
    if pte.kind == SWAP:
        if vma.anon_vma is None:
            vma = anon_vma_prepare(k, vma)
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
        if folio.lazyfree:
            # The write dirties the PTE: reclaim must keep the folio again.
            k.put_folio(folio._replace(lazyfree=False))
            k.event("do_wp_page", f"write to MADV_FREE'd folio#{folio.id}: dirty, kept")
    if not write or pte.write:
        return vma
    return do_wp_page(k, vma, addr, pte)


def do_wp_page(k: Kernel, vma: VMA, addr: int, pte: Pte) -> VMA:
    """Models mm/memory.c:do_wp_page(): a write to a read-only present page.

    An exclusive anonymous page is reused; a folio only this mapping holds
    is reused after folio_move_anon_rmap() (so rmap looks only in this
    VMA's anon_vma); anything shared (after fork, the zero page) is copied
    into a new exclusive folio in this VMA's anon_vma (wp_page_copy).
    """
    pt = k.pt(vma.mm)
    vpn = addr >> PAGE_SHIFT
    if pte.pmd and pte.folio == ZERO_PAGE:
        # do_huge_zero_wp_pmd(): a write to the huge zero page gets a THP.
        haddr = addr & ~((HPAGE_PMD_NR << PAGE_SHIFT) - 1)
        vma = _fault_new(k, vma, [(haddr >> PAGE_SHIFT, True)])
        k.event("do_huge_zero_wp_pmd", f"write to the huge zero page at {haddr:#x}: a new THP")
        return vma
    if pte.pmd:
        split_huge_pmd(k, vma.mm, addr & ~((HPAGE_PMD_NR << PAGE_SHIFT) - 1))
        pte = pt.get(vpn) or pte
    if pte.folio != ZERO_PAGE:
        folio = k.folio(pte.folio)
        if folio.anon_exclusive[pte.page]:
            pt.set(vpn, pte._replace(write=True))
            return vma
        if (
            not folio.maybe_mapped_shared()
            and not folio.maybe_dma_pinned()
            and (folio.order > 0 or folio.total_mapcount == 1)
        ):
            folio = folio_move_anon_rmap(k, folio, vma)
            k.put_folio(folio._replace(anon_exclusive=(True,) * folio.nr_pages))
            pt.set(vpn, pte._replace(write=True))
            k.event(
                "wp_can_reuse_anon_folio",
                f"folio#{folio.id} only mapped here: reused, moved to anon_vma#{vma.anon_vma}",
            )
            return vma
    if vma.anon_vma is None:
        vma = anon_vma_prepare(k, vma)
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


def change_protection(k: Kernel, vma: VMA) -> None:
    """Models mm/mprotect.c:change_protection(): PTE write bits follow the
    VMA. Only exclusive anonymous pages (and shared ones) may be made
    writable without a fault (can_change_pte_writable)."""
    writable = bool(vma.vm_flags & VM_WRITE)
    table = k.pagetable(vma.mm)
    pt = k.pt(vma.mm)
    for vpn, pte in table.items(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT):
        if pte.kind != PRESENT:
            continue
        if not writable:
            if pte.write:
                pt.set(vpn, pte._replace(write=False))
        elif not pte.write and pte.folio != ZERO_PAGE:
            folio = k.folio(pte.folio)
            if folio.shmem is not None or folio.anon_exclusive[pte.page]:
                pt.set(vpn, pte._replace(write=True))


def populate_range(k: Kernel, mm: str, start: int, end: int) -> None:
    """Models mm/gup.c:populate_vma_page_range(): fault in a range, writing
    where the mapping is private and writable (so it gets an anon_vma)."""
    addr = start
    while addr < end:
        vma = find_vma(k.state, mm, addr)
        if vma is None or vma.vm_start >= end:
            return
        lo, hi = max(addr, vma.vm_start), min(end, vma.vm_end)
        write = bool(vma.vm_flags & VM_WRITE) and vma.shmem is None
        if access_allowed(vma, write):
            if vma.shmem is not None:
                for a in range(lo, hi, PAGE_SIZE):
                    shmem_fault(k, vma, a, write)
            else:
                fault_anon_range(k, vma, lo, hi, write)
        addr = hi
