"""Faulting ranges in for the kernel, long-term pins, a racing GUP-fast pin.

Models mm/gup.c: populate_vma_page_range() (MAP_POPULATE, mlock),
faultin_page_range() (MADV_POPULATE_READ/WRITE),
pin_user_pages(FOLL_PIN | FOLL_LONGTERM | FOLL_WRITE), unpin_user_pages(), and, for the RELOCATE_ANON failure cases, a GUP-fast
pin that lands on a page while an mremap walks it (the race David
Hildenbrand raised: folio_maybe_dma_pinned() is racy against GUP-fast).
"""

from __future__ import annotations

from dataclasses import replace

from engine.memory import access_allowed, do_fault, fault_anon_range, handle_mm_fault
from engine.mm_constants import PAGE_SHIFT, PAGE_SIZE, page_align
from engine.mm_types import VM_WRITE, VMA, Folio
from engine.pagetable import PRESENT, ZERO_PAGE
from engine.sim.errors import SyscallError
from engine.sim.kernel import GupRace, Kernel
from engine.vma import find_vma

RACE_BEFORE_WALK = 1  # the pin lands before the walk reaches the page
RACE_BEFORE_UNDO = 2  # the pin lands after the walk passed it, before an undo
RACE_DURING_SPLIT = 3  # the pin lands on a large folio while the walk splits it


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
                    do_fault(k, vma, a, write)
            else:
                fault_anon_range(k, vma, lo, hi, write)
        addr = hi


def faultin_page_range(k: Kernel, vma: VMA, start: int, end: int, write: bool) -> int | None:
    """Models mm/gup.c:faultin_page_range() over one VMA (MADV_POPULATE_READ
    and _WRITE): every page faulted as the access asks, FOLL_WRITE for a
    write whatever the mapping. Unlike populate_vma_page_range(), a shared
    mapping is written: do_shared_fault(), which maps no pages around.

    Returns the address whose fault failed, where it stopped: a page past
    the end of the shmem object (VM_FAULT_SIGBUS, which __get_user_pages()
    turns into -EFAULT), or None."""
    if vma.shmem is None:
        fault_anon_range(k, vma, start, end, write)
        return None
    for addr in range(start, end, PAGE_SIZE):
        if do_fault(k, vma, addr, write) == "SIGBUS":
            return addr
    return None


def pin_user_pages(k: Kernel, mm: str, start: int, length: int) -> None:
    """Models pin_user_pages(FOLL_WRITE | FOLL_LONGTERM): fault each page in
    for write (breaking COW), then pin its folio; marks the mm MMF_HAS_PINNED."""
    end = start + page_align(length)
    for addr in range(start, end, PAGE_SIZE):
        if handle_mm_fault(k, mm, addr, write=True) != "ok":
            raise SyscallError("EFAULT", f"cannot fault {addr:#x} for write")
    k.put_mm(replace(k.mm(mm), has_pinned=True))
    count = _adjust_pins(k, mm, start, end, +1)
    k.step("mm/gup.c:pin_user_pages", f"{count} page(s) pinned (FOLL_LONGTERM)")


def unpin_user_pages(k: Kernel, mm: str, start: int, length: int) -> None:
    """Models unpin_user_pages() on the folios mapped in the range now."""
    count = _adjust_pins(k, mm, start, start + page_align(length), -1)
    k.step("mm/gup.c:unpin_user_pages", f"{count} page(s) unpinned")


def _adjust_pins(k: Kernel, mm: str, start: int, end: int, delta: int) -> int:
    folios: dict[int, Folio] = {}
    count = 0
    for _, pte in k.pagetable(mm).items(start >> PAGE_SHIFT, end >> PAGE_SHIFT):
        if pte.kind != PRESENT or pte.folio == ZERO_PAGE:
            continue
        folio = folios.get(pte.folio) or k.folio(pte.folio)
        if folio.pincount + delta < 0:
            continue
        folios[folio.id] = folio._replace(pincount=folio.pincount + delta)
        count += 1
    k.put_folios(list(folios.values()))
    return count


def pin_one(k: Kernel, mm: str, addr: int) -> int | None:
    """A GUP-fast pin of one page: no locks, just a reference on the folio."""
    pte = k.pt(mm).get(addr >> PAGE_SHIFT)
    if pte is None or pte.kind != PRESENT or pte.folio == ZERO_PAGE:
        return None
    folio = k.folio(pte.folio)
    k.put_folio(folio._replace(pincount=folio.pincount + 1))
    k.put_mm(replace(k.mm(mm), has_pinned=True))
    return folio.id


_MOMENTS = {
    RACE_BEFORE_WALK: "before the walk reaches it",
    RACE_BEFORE_UNDO: "after the walk passed it",
    RACE_DURING_SPLIT: "while the walk splits its large folio",
}


def arm_gup_fast_race(k: Kernel, mm: str, addr: int, when: int) -> None:
    """The engine's `gup_fast_pin(addr, when)`: arm a racing pin for the next
    RELOCATE_ANON walk over addr. when = 1: it lands before the walk reaches
    the page; when = 2: after the walk passed it, before any undo walk;
    when = 3: on the large folio holding it, while the walk has dropped the
    PTE lock to split that folio (after its pin check, before split_folio's
    refcount check)."""
    if when not in (RACE_BEFORE_WALK, RACE_BEFORE_UNDO, RACE_DURING_SPLIT):
        raise SyscallError(
            "EINVAL",
            "when must be 1 (before the walk), 2 (before the undo) or 3 (during a split)",
        )
    if addr % PAGE_SIZE:
        raise SyscallError("EINVAL", "addr not page aligned")
    k.gup_race = GupRace(mm, addr, when)
    k.step(
        "(injection)",
        f"a GUP-fast pin will land on {addr:#x} " + _MOMENTS[when],
    )
