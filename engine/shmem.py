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
from engine.pagetable import PRESENT, Pte
from engine.sim.kernel import Kernel


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
