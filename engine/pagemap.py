"""Where a page of a VMA lies in its object, and back.

Models include/linux/pagemap.h:linear_page_index() and
mm/internal.h:vma_address(): the pair of translations an rmap walk relies
on. A folio's index must be linear_page_index() of where it is mapped, or
vma_address() sends the walk to the wrong address.
"""

from __future__ import annotations

from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import VMA


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
