"""The shmem file behind a MAP_SHARED anonymous mapping, faulted page by page.

Models mm/shmem.c:shmem_fault(): a shared anonymous mapping has no
anon_vma; its folios live in the shmem object's page cache at their file
index, and every mapping of the object finds the same folio there.
"""

from __future__ import annotations

from dataclasses import replace

from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import VM_WRITE, VMA, Folio
from engine.pagemap import linear_page_index
from engine.pagetable import PRESENT, ZERO_PAGE, Pte
from engine.sim.kernel import Kernel


def shmem_fault(k: Kernel, vma: VMA, addr: int, write: bool) -> str:
    """Models mm/shmem.c:shmem_fault(): find or allocate the page-cache
    folio at the page's file index and map it (shared, no anon_vma). A
    write dirties the folio: only a dirty one must be kept by reclaim."""
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
        if write and pte.folio != ZERO_PAGE:
            folio = k.folio(pte.folio)
            if not folio.dirty:
                k.put_folio(folio._replace(dirty=True))
        return "ok"
    folio_id = obj.cache.get(index)
    if folio_id is None:
        folio_id = k.new_id()
        folio = Folio(folio_id, 0, None, index, (1,), (False,), shmem=obj.id, dirty=write)
        k.put_shmem(replace(obj, cache=obj.cache.set(index, folio_id)))
    else:
        folio = k.folio(folio_id)
        folio = folio._replace(mapcount=(folio.mapcount[0] + 1,), dirty=folio.dirty or write)
    k.put_folio(folio)
    pt.set(vpn, Pte(PRESENT, folio_id, 0, write=bool(vma.vm_flags & VM_WRITE)))
    return "ok"


def shmem_truncate_range(k: Kernel, shmem: int, first: int, count: int) -> int:
    """Models mm/shmem.c:shmem_truncate_range() as shmem_fallocate()'s
    FALLOC_FL_PUNCH_HOLE calls it after unmap_mapping_range(): drop the
    range's folios from the page cache and free them (nothing maps them
    any more). Returns how many pages were dropped."""
    cache = k.state.shmem[shmem].cache
    dropped = [cache[i] for i in range(first, first + count) if i in cache]
    for ident in dropped:
        remove_mapping(k, k.folio(ident))
    return len(dropped)


def remove_mapping(k: Kernel, folio: Folio) -> None:
    """Models mm/filemap.c:filemap_remove_folio() for a shmem folio nothing
    maps: out of the page cache (its index a hole again), and freed."""
    assert folio.shmem is not None
    obj = k.state.shmem[folio.shmem]
    k.put_shmem(replace(obj, cache=obj.cache.delete(folio.index)))
    k.free_folio(folio.id)
