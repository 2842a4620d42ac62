"""Transparent huge pages mapped by PMD: when they are used, how they split.

Models mm/huge_memory.c: the THP fault (do_huge_pmd_anonymous_page, the
huge zero page for reads), the write fault on a PMD mapping
(do_huge_pmd_wp_page, do_huge_zero_wp_pmd), __split_huge_pmd and
split_folio(). A split keeps the folio large and maps it by 512 PTEs; only
split_folio() makes small folios of it.
"""

from __future__ import annotations

import contextlib

from engine.mm_constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PAGE_SHIFT, PMD_SIZE
from engine.mm_types import VM_HUGEPAGE, VM_LOCKED, VM_NOHUGEPAGE, VMA, Folio
from engine.pagetable import PRESENT, ZERO_PAGE, Pte
from engine.rmap import folio_move_anon_rmap, new_folio, rmap_walk_anon
from engine.sim.kernel import Kernel
from engine.sim.trace import Lock


def thp_vma_suitable(k: Kernel, vma: VMA, addr: int) -> bool:
    """Models thp_vma_allowable_order() and thp_vma_suitable_order() for a
    PMD THP at addr: the machine profile's THP mode decides
    (engine.sim.profile): "madvise" needs VM_HUGEPAGE, "always" only not
    VM_NOHUGEPAGE, "never" none; and the aligned 2 MiB around addr must
    lie inside the VMA."""
    mode = k.profile.thp_enabled
    wanted = mode == "always" or (mode == "madvise" and vma.vm_flags & VM_HUGEPAGE)
    if not wanted or vma.vm_flags & VM_NOHUGEPAGE or not vma.is_anonymous():
        return False
    haddr = addr & ~(PMD_SIZE - 1)
    return vma.vm_start <= haddr and haddr + PMD_SIZE <= vma.vm_end


def thp_eligible(k: Kernel, vma: VMA, addr: int) -> bool:
    """Models the checks of do_huge_pmd_anonymous_page()'s caller
    (__handle_mm_fault): a suitable VMA (thp_vma_suitable) and no PTE
    table there yet, empty or not (pmd_none)."""
    if not thp_vma_suitable(k, vma, addr):
        return False
    return k.pt(vma.mm).table_is_none(addr >> (PAGE_SHIFT + HPAGE_PMD_ORDER))


def map_anon_folio_pmd(k: Kernel, vma: VMA, ident: int, vpn: int) -> Folio:
    """Models mm/huge_memory.c:map_anon_folio_pmd(): a new THP at the
    PMD-aligned page vpn, mapped writable by one PMD. The caller stores
    the folio (a fault stores its whole batch at once)."""
    folio = new_folio(k, ident, HPAGE_PMD_ORDER, vma, vpn << PAGE_SHIFT)
    pt = k.pt(vma.mm)
    for i in range(HPAGE_PMD_NR):
        pt.set(vpn + i, Pte(PRESENT, ident, i, write=True, pmd=True))
    return folio


def note_thps_mapped(k: Kernel, vma: VMA, count: int) -> None:
    """The decision do_huge_pmd_anonymous_page() records for new THPs."""
    k.event(
        "do_huge_pmd_anonymous_page", f"{count} THP(s) mapped by PMD in anon_vma#{vma.anon_vma}"
    )


def map_huge_zero_pmd(k: Kernel, vma: VMA, vpn: int) -> None:
    """Models do_huge_pmd_anonymous_page()'s read fault: the PMD maps the
    huge zero folio read-only (set_huge_zero_folio)."""
    base = vpn & ~(HPAGE_PMD_NR - 1)
    pt = k.pt(vma.mm)
    for i in range(HPAGE_PMD_NR):
        pt.set(base + i, Pte(PRESENT, ZERO_PAGE, 0, write=False, pmd=True))
    k.event("do_huge_pmd_anonymous_page", f"read: huge zero page at {base << PAGE_SHIFT:#x}")


def do_huge_pmd_wp_page(k: Kernel, vma: VMA, addr: int, pte: Pte) -> Pte | None:
    """Models mm/huge_memory.c:do_huge_pmd_wp_page(): a write to a PMD mapping.

    The huge zero page gets a THP of its own (do_huge_zero_wp_pmd; the
    caller has prepared the anon_vma). A THP whose head page is
    AnonExclusive, or that nothing but this PMD references (refcount 1:
    no other mapping, no pin), is reused whole: the PMD becomes writable,
    after folio_move_anon_rmap() when it was not exclusive. Any other PMD
    mapping is split and the fault falls back to the page's PTE
    (VM_FAULT_FALLBACK): returns that PTE for do_wp_page() to go on with,
    or None when handled here.
    """
    haddr = addr & ~(PMD_SIZE - 1)
    if pte.folio == ZERO_PAGE:
        do_huge_zero_wp_pmd(k, vma, haddr)
        return None
    folio = k.folio(pte.folio)
    if folio.anon_exclusive[0] or folio.refcount == 1:
        if not folio.anon_exclusive[0]:
            folio = folio_move_anon_rmap(k, folio, vma)
            k.put_folio(folio._replace(anon_exclusive=(True,) * folio.nr_pages))
        pt = k.pt(vma.mm)
        base = haddr >> PAGE_SHIFT
        for i in range(HPAGE_PMD_NR):
            entry = pt.get(base + i)
            assert entry is not None
            pt.set(base + i, entry._replace(write=True))
        k.event("do_huge_pmd_wp_page", f"THP folio#{folio.id} only mapped here: reused whole")
        return None
    split_huge_pmd(k, vma.mm, haddr)
    return k.pt(vma.mm).get(addr >> PAGE_SHIFT) or pte


def do_huge_zero_wp_pmd(k: Kernel, vma: VMA, haddr: int) -> None:
    """Models mm/huge_memory.c:do_huge_zero_wp_pmd(): a write to the huge
    zero page replaces it by a new THP in the VMA's anon_vma."""
    assert vma.anon_vma is not None
    k.put_folio(map_anon_folio_pmd(k, vma, k.new_id(), haddr >> PAGE_SHIFT))
    note_thps_mapped(k, vma, 1)
    k.event("do_huge_zero_wp_pmd", f"write to the huge zero page at {haddr:#x}: a new THP")


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
    """Models mm/huge_memory.c:split_huge_pmd_address(): a VMA boundary at
    addr cannot cut through a PMD mapping, so split one that straddles it."""
    if addr % PMD_SIZE:
        split_huge_pmd(k, vma.mm, addr & ~(PMD_SIZE - 1))


def split_huge_pmd_edges(k: Kernel, mm: str, start: int, end: int) -> None:
    """Split the huge PMDs that [start, end) covers only in part, as zap and
    reclaim do before working page by page (__split_huge_pmd at each edge)."""
    for edge in (start, end):
        if edge % PMD_SIZE:
            split_huge_pmd(k, mm, edge & ~(PMD_SIZE - 1))


def split_folio(k: Kernel, vma: VMA, folio: Folio, head_vpn: int, caller_pins: int) -> str | None:
    """Models mm/huge_memory.c:split_folio() (__folio_split) of a locked
    anonymous large folio mapped in `vma` from head_vpn: returns the errno
    it fails with, or None.

    folio_get_anon_vma() must find a live anon_vma (else -EBUSY); it is
    write-locked for the split. can_split_folio() wants the refcount to be
    the mapcount plus `caller_pins` (the caller's folio_get()) plus
    extra_pins (0 outside the swap cache): any other reference, a GUP pin
    among them, gives -EAGAIN. On success the folio is split (_split).
    """
    if k.state.rmap_model == "cow_context":
        # The branch's split path (mm/huge_memory.c) was not read: without
        # anon_vmas there is none to lock; its walk runs under RCU alone.
        k.event("split_folio", "CONFIG_COW_CONTEXT_ANON_RMAP: no anon_vma to lock")
        lock: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        av = k.state.anon_vmas.get(folio.mapping) if folio.mapping is not None else None
        if av is None:
            k.event("split_folio", f"folio_get_anon_vma(folio#{folio.id}) finds none: -EBUSY")
            return "EBUSY"
        lock = k.lock(Lock.anon_vma_write(av.root))
    with lock:
        refcount = folio.refcount + caller_pins
        expected = folio.total_mapcount + caller_pins
        if refcount != expected:
            k.event(
                "can_split_folio",
                f"folio#{folio.id}: refcount {refcount} != mapcount {folio.total_mapcount}"
                f" + caller_pins {caller_pins} + extra_pins 0: extra references: -EAGAIN",
                pincount=folio.pincount,
            )
            return "EAGAIN"
        _split(k, vma, folio, head_vpn)
        k.event("split_folio", f"folio#{folio.id} split into {folio.nr_pages} small folios")
    return None


def _split(k: Kernel, vma: VMA, folio: Folio, head_vpn: int) -> None:
    """unmap_folio() (a PMD mapping split first: TTU_SPLIT_HUGE_PMD),
    __split_folio_to_order() and remap_page(): each page becomes a small
    folio, same mapping, index head.index + i, keeping its mapcount and
    exclusivity, and every PTE that mapped the page maps it: the caller's
    at head_vpn in `vma`, and those rmap finds (another VMA of this mm
    that mremap moved some of the pages to).

    remap_page() with RMP_USE_SHARED_ZEROPAGE maps an anonymous page that
    holds no data (Folio.data) to the shared zero page instead
    (try_to_map_unused_to_zeropage; not in a VM_LOCKED VMA), and the small
    folio nothing maps then is freed, as is a page mapped nowhere. A page
    mapped where this model cannot see it (more mappings than it finds) is
    kept in every mapping.
    """
    pt = k.pt(vma.mm)
    head = pt.get(head_vpn)
    if head is not None and head.pmd:
        split_huge_pmd(k, vma.mm, head_vpn << PAGE_SHIFT)
        folio = k.folio(folio.id)
    ids = k.new_ids(folio.nr_pages)
    small = []
    zeroed = 0
    for i, (ident, mappings) in enumerate(
        zip(ids, _mappings(k, vma, folio, head_vpn), strict=True)
    ):
        count = folio.mapcount[i]
        unused = folio.shmem is None and not folio.data >> i & 1 and count == len(mappings)
        for where, vpn, entry in mappings:
            if unused and not where.vm_flags & VM_LOCKED:
                k.pt(where.mm).set(vpn, Pte(PRESENT, ZERO_PAGE, 0, write=False))
                count -= 1
                zeroed += 1
            else:
                k.pt(where.mm).set(vpn, entry._replace(folio=ident, page=0))
        if not count:
            continue  # mapped nowhere now: freed with the split
        small.append(
            Folio(
                ident,
                0,
                folio.mapping,
                folio.index + i,
                (count,),
                (folio.anon_exclusive[i],),
                lazyfree=folio.lazyfree,
                dirty=folio.dirty,
            )
        )
    k.free_folio(folio.id)
    k.put_folios(small)
    if zeroed:
        k.event(
            "try_to_map_unused_to_zeropage",
            f"split of folio#{folio.id}: {zeroed} page(s) holding no data mapped to the zero page",
        )


def _mappings(k: Kernel, vma: VMA, folio: Folio, head_vpn: int) -> list[list[tuple[VMA, int, Pte]]]:
    """For each page of the folio, the PTEs that map it: (vma, vpn, entry),
    the caller's first, then those rmap_walk_anon() finds."""
    found: list[list[tuple[VMA, int, Pte]]] = [[] for _ in range(folio.nr_pages)]
    seen: set[tuple[str, int]] = set()

    def add(where: VMA, i: int, vpn: int) -> None:
        entry = k.pt(where.mm).get(vpn)
        if (where.mm, vpn) in seen or entry is None or entry.kind != PRESENT:
            return
        if entry.folio == folio.id and entry.page == i:
            seen.add((where.mm, vpn))
            found[i].append((where, vpn, entry))

    for i in range(folio.nr_pages):
        add(vma, i, head_vpn + i)
    # Every mapping, also under cow_context (exclusive_stop=False): the
    # branch's split path was not read, and a PTE left on the old folio
    # would name a freed one.
    for where, _ in rmap_walk_anon(k.state, folio, exclusive_stop=False):
        for i in range(folio.nr_pages):
            addr = where.vm_start + ((folio.index + i - where.vm_pgoff) << PAGE_SHIFT)
            if where.vm_start <= addr < where.vm_end:
                add(where, i, addr >> PAGE_SHIFT)
    return found
