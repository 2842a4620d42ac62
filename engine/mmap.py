"""Creating and removing mappings: mmap, munmap and address placement.

Models mm/mmap.c (do_mmap, __get_unmapped_area, do_munmap), the x86-64
top-down arch_get_unmapped_area_topdown and THP alignment of large
anonymous mappings.

Three functions of mm/vma.c live here, not in engine.vma: the ones that zap
pages (vms_complete_munmap_vmas, do_vmi_munmap, __mmap_region). Zapping is
mm/memory.c's, and the faults there call into mm/vma.c
(find_mergeable_anon_vma, expand_downwards): in C the two files call each
other, a Python import graph must not, so vma.py stays below memory.py.
"""

from __future__ import annotations

from dataclasses import replace

from engine.cow_context import drop_cow_context
from engine.gup import populate_range
from engine.memory import free_pgtables, zap_page_range
from engine.mm_constants import (
    EXEC_MAPPINGS,
    MAX_MAP_COUNT,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SIZE,
    TASK_SIZE,
    page_align,
)
from engine.mm_types import (
    VM_ACCOUNT,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_LOCKED,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_NOHUGEPAGE,
    VM_NORESERVE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    VMA,
    ShmemObject,
)
from engine.rmap import unlink_anon_vmas
from engine.sim.errors import SyscallError
from engine.sim.kernel import Kernel
from engine.uapi import ERRNO_NAME, MAP, MAP_TYPE, PROT
from engine.vma import (
    VMG,
    find_vma,
    gather_munmap_vmas,
    remove_vma,
    unmapped_area_topdown,
    vm_start_gap,
    vma_before,
    vma_merge_new_range,
    vmas_in_range,
)

MMAP_BASE = EXEC_MAPPINGS[0][0]  # top of the top-down area, below [vvar] (ASLR off)
MMAP_MIN_ADDR = 0x1000  # /proc/sys/vm/mmap_min_addr on these machines
MAX_ERRNO = 4095


def arch_get_unmapped_area_topdown(k: Kernel, mm: str, addr: int, length: int) -> int:
    """Models arch/x86/kernel/sys_x86_64.c:arch_get_unmapped_area_topdown().

    A hint is taken when [addr, addr + len) ends at or below the next VMA's
    start gap; otherwise the highest gap below mmap_base.
    """
    if length > TASK_SIZE:
        raise SyscallError("ENOMEM", "len > TASK_SIZE")
    if addr:
        addr &= ~(PAGE_SIZE - 1)
        if TASK_SIZE - length >= addr:
            vma = find_vma(k.state, mm, addr)
            if vma is None or addr + length <= vm_start_gap(vma):
                k.event("arch_get_unmapped_area_topdown", f"hint {addr:#x} is free: taken")
                return addr
            k.event(
                "arch_get_unmapped_area_topdown", f"hint {addr:#x} overlaps vma#{vma.id}: searching"
            )
    return unmapped_area_topdown(k, mm, length, MMAP_BASE)


def get_unmapped_area(
    k: Kernel, mm: str, addr: int, length: int, pgoff: int, flags: int, shared: bool
) -> int:
    """Models mm/mmap.c:__get_unmapped_area() for anonymous memory.

    MAP_FIXED takes addr as it is. A private anonymous request without a
    hint whose length is a multiple of 2 MiB is placed THP-aligned
    (thp_get_unmapped_area_vmflags pads by 2 MiB, then aligns to pgoff).
    """
    if length > TASK_SIZE:
        raise SyscallError("ENOMEM", "len > TASK_SIZE")
    if flags & MAP["MAP_FIXED"]:
        result = addr
    elif not shared and not addr and length % PMD_SIZE == 0:
        result = _thp_get_unmapped_area(k, mm, length)
    else:
        result = arch_get_unmapped_area_topdown(k, mm, addr, length)
    if result >= (1 << 64) - MAX_ERRNO:
        errno = (1 << 64) - result
        raise SyscallError(
            ERRNO_NAME.get(errno, str(errno)), "MAP_FIXED address is an error value (IS_ERR_VALUE)"
        )
    if result > TASK_SIZE - length:
        raise SyscallError("ENOMEM", f"{result:#x} + len beyond TASK_SIZE")
    if result % PAGE_SIZE:
        raise SyscallError("EINVAL", "address not page aligned")
    return result


def _thp_get_unmapped_area(k: Kernel, mm: str, length: int) -> int:
    """Models mm/huge_memory.c:__thp_get_unmapped_area() (PMD size).

    Pads the request by 2 MiB and aligns the result to 2 MiB. Anonymous
    memory has no file offset to align to (the kernel passes pgoff 0 for
    it, also when mremap moves a VMA: measured on 6.18).
    """
    off = 0
    try:
        ret = arch_get_unmapped_area_topdown(k, mm, 0, length + PMD_SIZE)
    except SyscallError:
        return arch_get_unmapped_area_topdown(k, mm, 0, length)
    off_sub = (off - ret) & (PMD_SIZE - 1)
    aligned = ret + PMD_SIZE if not off_sub else ret + off_sub
    k.event("thp_get_unmapped_area", f"length is a multiple of 2 MiB: aligned to {aligned:#x}")
    return aligned


def calc_vm_prot_bits(prot: int) -> int:
    """Models include/linux/mman.h:calc_vm_prot_bits(): PROT_* to VM_*."""
    return (
        (VM_READ if prot & PROT["PROT_READ"] else 0)
        | (VM_WRITE if prot & PROT["PROT_WRITE"] else 0)
        | (VM_EXEC if prot & PROT["PROT_EXEC"] else 0)
    )


def calc_vm_flags(prot: int, flags: int) -> int:
    """Models calc_vm_prot_bits() | calc_vm_flag_bits() | VM_MAY*."""
    vm = calc_vm_prot_bits(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    if flags & MAP["MAP_GROWSDOWN"]:
        vm |= VM_GROWSDOWN
    if flags & MAP["MAP_LOCKED"]:
        vm |= VM_LOCKED
    if flags & MAP["MAP_STACK"]:
        vm |= VM_NOHUGEPAGE
    return vm


def complete_munmap_vmas(k: Kernel, mm: str, vmas: list[VMA], start: int, end: int) -> None:
    """Models mm/vma.c:vms_complete_munmap_vmas(): zap the pages, free the
    page tables no other VMA uses and drop the anon_vma chains
    (vms_clear_ptes: unmap_vmas, free_pgtables between the VMAs around the
    range, vms->unmap_start and unmap_end), then free the removed VMAs."""
    prev = vma_before(k.state, mm, vmas[0].vm_start)
    after = find_vma(k.state, mm, vmas[-1].vm_end)
    zap_page_range(k, mm, start, end, reclaim_pt=False)
    free_pgtables(k, mm, vmas, _unmap_start(prev), _unmap_end(after, vmas[-1].vm_end))
    for vma in vmas:
        vma = k.vma(vma.id)
        if vma.avc or vma.anon_vma is not None:  # free_pgtables()
            vma = unlink_anon_vmas(k, vma)
        remove_vma(k, vma)


def _unmap_start(prev: VMA | None) -> int:
    """vms->unmap_start: the end of the VMA before the range, else
    FIRST_USER_ADDRESS (0)."""
    return prev.vm_end if prev is not None else 0


def _unmap_end(after: VMA | None, end: int) -> int:
    """vms->unmap_end: the start of the VMA after the range (one of the
    process's own above the mmap area, EXEC_MAPPINGS, where the engine has
    none), else USER_PGTABLES_CEILING (0: the top)."""
    if after is not None:
        return after.vm_start
    return min((start for start, _ in EXEC_MAPPINGS if start >= end), default=0)


def do_vmi_munmap(
    k: Kernel,
    mm: str,
    start: int,
    length: int,
    fn: str = "do_vmi_munmap",
    file: str = "mm/vma.c",
) -> None:
    """Models mm/vma.c:do_vmi_munmap(): unmap [start, start + len).

    Unmapping nothing is not an error; the edges of partly covered VMAs are
    split off and survive. `fn` in `file` is the caller the steps name
    (mm/mmap.c:do_munmap, mm/mremap.c:shrink_vma, ...).
    """
    if start % PAGE_SIZE or start > TASK_SIZE or length > TASK_SIZE - start:
        raise SyscallError("EINVAL", "start unaligned or range beyond TASK_SIZE")
    end = start + page_align(length)
    if end == start:
        raise SyscallError("EINVAL", "zero length")
    vmas = gather_munmap_vmas(k, mm, start, end)
    if not vmas:
        k.event(fn, "no VMA in range: nothing to do")
        k.step(f"{file}:{fn}", f"nothing mapped in {start:#x}-{end:#x}")
        return
    k.step(
        "mm/vma.c:vms_gather_munmap_vmas",
        f"detach {len(vmas)} vma(s) in {start:#x}-{end:#x}",
    )
    complete_munmap_vmas(k, mm, vmas, start, end)
    k.step("mm/vma.c:vms_complete_munmap_vmas", "zap pages, unlink anon_vmas, free vmas")


def do_mmap(
    k: Kernel, mm: str, addr: int, length: int, prot: int, flags: int, fd: int, off: int
) -> int:
    """Models mm/mmap.c:do_mmap() and mmap_region() for anonymous memory.

    Returns the mapped address. A MAP_FIXED range first loses what was
    mapped there; the new range then merges with an adjacent compatible
    VMA (vma_merge_new_range) or becomes a new VMA. A private anonymous
    VMA's pgoff is its address >> PAGE_SHIFT.
    """
    if off % PAGE_SIZE:
        raise SyscallError("EINVAL", "offset not page aligned")
    if not flags & MAP["MAP_ANONYMOUS"]:
        raise SyscallError("EBADF", "only anonymous mappings: fd is not a file")
    if flags & MAP["MAP_HUGETLB"]:
        raise SyscallError("ENOMEM", "MAP_HUGETLB: no hugetlb pages are reserved")
    if not length:
        raise SyscallError("EINVAL", "length 0")
    if flags & MAP["MAP_FIXED_NOREPLACE"]:
        flags |= MAP["MAP_FIXED"]
    if not flags & MAP["MAP_FIXED"]:
        addr &= ~(PAGE_SIZE - 1)
        if addr and addr < MMAP_MIN_ADDR:
            addr = MMAP_MIN_ADDR
    length = page_align(length)
    if not length:
        raise SyscallError("ENOMEM", "length overflows")
    pgoff = off >> PAGE_SHIFT
    if pgoff + (length >> PAGE_SHIFT) >= 1 << 64:
        raise SyscallError("EOVERFLOW", "offset + length overflows")
    if len(k.mm(mm).vmas) > MAX_MAP_COUNT:
        raise SyscallError("ENOMEM", "map_count above max_map_count")
    vm_flags = calc_vm_flags(prot, flags)
    map_type = flags & MAP_TYPE
    shared = map_type == MAP["MAP_SHARED"]
    addr = get_unmapped_area(k, mm, addr, length, pgoff, flags, shared)
    end = addr + length
    if flags & MAP["MAP_FIXED_NOREPLACE"] and vmas_in_range(k.state, mm, addr, end):
        raise SyscallError("EEXIST", "MAP_FIXED_NOREPLACE: range already mapped")
    if map_type == MAP["MAP_SHARED"]:
        if vm_flags & VM_GROWSDOWN:
            raise SyscallError("EINVAL", "MAP_SHARED with MAP_GROWSDOWN")
        pgoff = 0
        vm_flags |= VM_SHARED | VM_MAYSHARE
    elif map_type == MAP["MAP_PRIVATE"]:
        pgoff = addr >> PAGE_SHIFT
    else:
        raise SyscallError("EINVAL", "mapping type must be MAP_PRIVATE or MAP_SHARED")
    if flags & MAP["MAP_NORESERVE"]:
        vm_flags |= VM_NORESERVE
    k.step("mm/mmap.c:do_mmap", f"checks passed; get_unmapped_area chose {addr:#x}")
    mmap_region(k, mm, addr, length, vm_flags, pgoff)
    populate = flags & (MAP["MAP_POPULATE"] | MAP["MAP_NONBLOCK"]) == MAP["MAP_POPULATE"]
    if vm_flags & VM_LOCKED or populate:
        populate_range(k, mm, addr, end)
        k.step("mm/gup.c:__mm_populate", f"fault in {addr:#x}-{end:#x}")
    return addr


def mmap_region(k: Kernel, mm: str, addr: int, length: int, vm_flags: int, pgoff: int) -> VMA:
    """Models mm/vma.c:__mmap_region(): replace what is there, then merge or
    create the VMA."""
    end = addr + length
    old = gather_munmap_vmas(k, mm, addr, end)
    if old:
        for vma in old:
            mm_obj = k.mm(mm)
            k.put_mm(replace(mm_obj, vmas=tuple(v for v in mm_obj.vmas if v != vma.id)))
        k.step("mm/vma.c:vms_gather_munmap_vmas", f"detach {len(old)} vma(s) under MAP_FIXED")
    if vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE) == VM_WRITE:
        vm_flags |= VM_ACCOUNT
    vmg = VMG(
        mm=mm,
        start=addr,
        end=end,
        pgoff=pgoff,
        flags=vm_flags,
        anon_vma=None,
        shmem=None,
        prev=vma_before(k.state, mm, addr),
        next=find_vma(k.state, mm, end),
        rmap_model=k.state.rmap_model,
    )
    merged = vma_merge_new_range(k, vmg)
    if merged is None:
        shmem = None
        if vm_flags & VM_SHARED:
            obj = ShmemObject(k.new_id(), inode=k.state.next_id, pages=length >> PAGE_SHIFT)
            k.put_shmem(obj)
            shmem = obj.id
        vma = k.link_vma(VMA(k.new_id(), mm, addr, end, pgoff, vm_flags, shmem=shmem))
        k.step("mm/vma.c:__mmap_new_vma", f"new vma#{vma.id} {addr:#x}-{end:#x}")
    else:
        vma = merged
        k.step("mm/vma.c:vma_merge_new_range", f"merged into vma#{vma.id}")
    if old:
        _complete_detached(k, mm, old, _unmap_start(vmg.prev), _unmap_end(vmg.next, end))
        k.step("mm/vma.c:vms_complete_munmap_vmas", "zap old pages, free old vmas")
    return vma


def _complete_detached(k: Kernel, mm: str, old: list[VMA], floor: int, ceiling: int) -> None:
    """Free VMAs that MAP_FIXED detached: their pages, the page tables the
    VMAs that were around them do not use (free_pgtables between floor and
    ceiling, as gathered before the new VMA went in), chains and structs."""
    zap_page_range(k, mm, old[0].vm_start, old[-1].vm_end, reclaim_pt=False)
    free_pgtables(k, mm, old, floor, ceiling)
    for vma in old:
        vma = k.vma(vma.id)
        if vma.avc or vma.anon_vma is not None:  # free_pgtables()
            vma = unlink_anon_vmas(k, vma)
        remove_vma(k, vma, linked=False)


def exit_mmap(k: Kernel, mm: str) -> None:
    """Models mm/mmap.c:exit_mmap() and the mm's last put: zap every VMA's
    pages, free_pgtables() (unlink_anon_vmas; every page table, the stack's
    and vDSO's too, goes with the mm here), remove_vma() each VMA, and
    drop the mm (under cow_context, drop_cow_context(): its context stays
    while children or folios hold it)."""
    vmas = k.state.mm_vmas(mm)
    for vma in vmas:
        zap_page_range(k, mm, vma.vm_start, vma.vm_end, reclaim_pt=False)
    for vma in vmas:
        vma = k.vma(vma.id)
        if vma.avc or vma.anon_vma is not None:
            vma = unlink_anon_vmas(k, vma)
        remove_vma(k, vma)
    k.step("mm/mmap.c:exit_mmap", f"{mm}: {len(vmas)} vma(s) unmapped and freed")
    if k.state.rmap_model == "cow_context":
        drop_cow_context(k, mm)
    k.drop_mm(mm)
