"""fork(): duplicate an address space, anon_vma hierarchy and page tables.

Models mm/mmap.c:dup_mmap() (kernel/fork.c before 6.16) and
mm/memory.c:copy_page_range(). A child VMA is chained to every anon_vma of
its parent VMA and gets one of its own (anon_vma_fork); anonymous pages are
shared copy-on-write, except pinned exclusive ones, copied at once.
Under the cow_context rmap model the child gets its own COW context, each
copied VMA off its home records its offset there (cow_context_do_fork), and
the child's context joins the parent's children (dup_cow_context).
"""

from __future__ import annotations

from dataclasses import replace

from engine.cow_context import cow_context_do_fork, dup_cow_context, mm_init_cow_context
from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import MM, VM_DONTCOPY, VM_LOCKED_MASK, VM_WIPEONFORK, VM_WRITE, VMA, Folio
from engine.pagetable import PRESENT, ZERO_PAGE, Pte
from engine.rmap import anon_vma_fork, new_folio
from engine.sim.kernel import Kernel


def dup_mmap(k: Kernel, parent: str, child: str) -> int:
    """Models dup_mmap(): returns the child's pid."""
    pid = k.alloc_pid()
    created = 1 + max(mm.created for mm in k.state.processes.values())
    k.put_mm(MM(child, pid, parent=parent, created=created))
    cow = k.state.rmap_model == "cow_context"
    if cow:
        mm_init_cow_context(k, child)
    k.step("kernel/fork.c:copy_process", f"new process {child} (pid {pid}), empty mm")
    for pvma in k.state.mm_vmas(parent):
        if pvma.vm_flags & VM_DONTCOPY:
            k.event("dup_mmap", f"vma#{pvma.id} has VM_DONTCOPY (MADV_DONTFORK): not copied")
            k.step("mm/mmap.c:dup_mmap", f"skip vma#{pvma.id}")
            continue
        flags = pvma.vm_flags & ~VM_LOCKED_MASK
        vma = k.put_vma(replace(pvma, id=k.new_id(), mm=child, vm_flags=flags, avc=()))
        if pvma.vm_flags & VM_WIPEONFORK:
            vma = k.put_vma(replace(vma, anon_vma=None))
            k.event("dup_mmap", f"vma#{pvma.id} has VM_WIPEONFORK: child starts empty")
        else:
            if cow:
                cow_context_do_fork(k, vma)
            vma = anon_vma_fork(k, vma, pvma)
        k.link_vma(vma)
        if not pvma.vm_flags & VM_WIPEONFORK and pvma.anon_vma is not None:
            copy_page_range(k, k.vma(vma.id), pvma)
        k.step("mm/mmap.c:dup_mmap", f"vma#{pvma.id} -> {child}'s vma#{vma.id}")
    if cow:
        dup_cow_context(k, child, parent)
        k.step("mm/cow_context.c:dup_cow_context", f"{child}'s cow_context joins the fork tree")
    return pid


def copy_page_range(k: Kernel, dst: VMA, src: VMA) -> None:
    """Models copy_page_range(): share anonymous folios copy-on-write.

    Each shared page loses AnonExclusive and is write-protected in both
    processes. A page that is exclusive and may be DMA-pinned (the parent
    mm has pinned pages) cannot be shared: the child gets a copy now
    (copy_present_page()), in its own anon_vma.

    The child gets a page table wherever the parent has one in the VMA's
    range, empty or not (copy_pud_range's pud_alloc, copy_pmd_range's
    pmd_alloc, copy_pte_range's pte_alloc before it looks at an entry;
    copy_huge_pmd deposits a table for a huge PMD).
    """
    table = k.pagetable(src.mm)
    parent_pt, child_pt = k.pt(src.mm), k.pt(dst.mm)
    lo, hi = src.vm_start >> PAGE_SHIFT, src.vm_end >> PAGE_SHIFT
    for pgd in table.pgd_indexes(lo, hi):
        child_pt.alloc_pud_table(pgd)
    for pud in table.pud_indexes(lo, hi):
        child_pt.alloc_pmd_table(pud)
    for pmd in table.pmd_indexes(lo, hi):
        child_pt.alloc_table(pmd)
    has_pinned = k.mm(src.mm).has_pinned
    folios: dict[int, Folio] = {}
    copies = 0
    for vpn, pte in table.items(lo, hi):
        if pte.kind != PRESENT or pte.folio == ZERO_PAGE:
            child_pt.set(vpn, pte)
            continue
        folio = folios.get(pte.folio) or k.folio(pte.folio)
        if has_pinned and folio.maybe_dma_pinned() and folio.anon_exclusive[pte.page]:
            ident = k.new_id()
            k.put_folio(new_folio(k, ident, 0, dst, vpn << PAGE_SHIFT))
            child_pt.set(vpn, Pte(PRESENT, ident, 0, write=bool(dst.vm_flags & VM_WRITE)))
            copies += 1
            continue
        excl = list(folio.anon_exclusive)
        excl[pte.page] = False
        if pte.pmd:
            if pte.page == 0:
                folio = folio._replace(entire_mapcount=folio.entire_mapcount + 1)
        else:
            counts = list(folio.mapcount)
            counts[pte.page] += 1
            folio = folio._replace(mapcount=tuple(counts))
        folios[folio.id] = folio._replace(anon_exclusive=tuple(excl))
        shared = pte._replace(write=False)
        parent_pt.set(vpn, shared)
        child_pt.set(vpn, shared)
    k.put_folios(list(folios.values()))
    if copies:
        k.event("copy_present_page", f"{copies} pinned page(s) copied into the child at fork")
    if folios:
        k.event("copy_present_ptes", f"{len(folios)} folio(s) shared copy-on-write")
