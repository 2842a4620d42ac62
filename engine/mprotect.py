"""mprotect(2): change a range's protection, splitting and merging VMAs.

Models mm/mprotect.c:do_mprotect_pkey(), mprotect_fixup() and
change_protection(). The loop
changes VMA after VMA and stops with -ENOMEM at the first hole, after
changing what came before it, as the kernel does.
"""

from __future__ import annotations

from dataclasses import replace

from engine.mm_constants import PAGE_SHIFT, PAGE_SIZE, page_align
from engine.mm_types import (
    VM_ACCESS_FLAGS,
    VM_ACCOUNT,
    VM_GROWSDOWN,
    VM_HUGETLB,
    VM_NORESERVE,
    VM_SHARED,
    VM_WRITE,
    VMA,
)
from engine.mmap import calc_vm_prot_bits
from engine.pagetable import PRESENT, ZERO_PAGE
from engine.sim.errors import SyscallError
from engine.sim.kernel import Kernel
from engine.uapi import PROT, PROT_GROWSDOWN, PROT_GROWSUP, PROT_SEM
from engine.vma import SplitError, find_vma, find_vma_prev, vma_modify

VALID_PROT = PROT["PROT_READ"] | PROT["PROT_WRITE"] | PROT["PROT_EXEC"] | PROT_SEM


def do_mprotect(k: Kernel, mm: str, start: int, length: int, prot: int) -> None:
    """Models mm/mprotect.c:do_mprotect_pkey()."""
    if prot & (PROT_GROWSDOWN | PROT_GROWSUP) or prot & ~VALID_PROT:
        raise SyscallError("EINVAL", "unknown prot bits")
    if start % PAGE_SIZE:
        raise SyscallError("EINVAL", "start not page aligned")
    if not length:
        k.event("do_mprotect_pkey", "length 0: nothing to do")
        return
    length = page_align(length)
    end = start + length
    if end <= start:
        raise SyscallError("ENOMEM", "range wraps")
    vma = find_vma(k.state, mm, start)
    if vma is None or vma.vm_start >= end:
        raise SyscallError("ENOMEM", f"no VMA in {start:#x}-{end:#x}")
    if vma.vm_start > start and not vma.vm_flags & VM_GROWSDOWN:
        raise SyscallError("ENOMEM", f"{start:#x} is not mapped")
    prev = find_vma_prev(k.state, vma)
    if start > vma.vm_start:
        prev = vma
    tmp = vma.vm_start
    nstart = start
    while True:
        vma = find_vma(k.state, mm, nstart)
        if vma is None or vma.vm_start >= end:
            break
        if vma.vm_start != tmp:
            raise SyscallError(
                "ENOMEM", f"hole at {tmp:#x}: stopped after changing what came before"
            )
        newflags = calc_vm_prot_bits(prot) | (vma.vm_flags & ~VM_ACCESS_FLAGS)
        if newflags & VM_ACCESS_FLAGS & ~(newflags >> 4):
            raise SyscallError("EACCES", "VM_MAY* forbids the new protection")
        tmp = min(vma.vm_end, end)
        prev = mprotect_fixup(k, prev, vma, max(nstart, vma.vm_start), tmp, newflags)
        tmp = prev.vm_end
        nstart = tmp
        if nstart >= end:
            return
    if tmp < end:
        raise SyscallError("ENOMEM", f"{tmp:#x}-{end:#x} is not mapped")


def mprotect_fixup(
    k: Kernel, prev: VMA | None, vma: VMA, start: int, end: int, newflags: int
) -> VMA:
    """Models mm/mprotect.c:mprotect_fixup(): one VMA's part of the change.

    A private mapping turning writable is charged and gains VM_ACCOUNT; an
    unfaulted anonymous one losing write drops it. The range is merged
    with a neighbour or split out (vma_modify_flags), then takes the flags.
    """
    oldflags = vma.vm_flags
    if newflags == oldflags:
        k.event("mprotect_fixup", f"vma#{vma.id} already has these flags")
        return vma
    if newflags & VM_WRITE:
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
            newflags |= VM_ACCOUNT
            k.event("mprotect_fixup", "private mapping turns writable: charged, gains VM_ACCOUNT")
    elif oldflags & VM_ACCOUNT and vma.is_anonymous() and vma.anon_vma is None:
        newflags &= ~VM_ACCOUNT
        k.event("mprotect_fixup", "unfaulted anonymous mapping loses write: drops VM_ACCOUNT")
    try:
        vma = vma_modify(k, prev, vma, start, end, newflags, "vma_modify_flags")
    except SplitError as err:
        raise SyscallError("ENOMEM", "split_vma: map_count at max_map_count") from err
    vma = k.put_vma(replace(vma, vm_flags=newflags))
    change_protection(k, vma)
    k.step(
        "mm/mprotect.c:mprotect_fixup",
        f"vma#{vma.id} {vma.vm_start:#x}-{vma.vm_end:#x} gets the new protection",
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
