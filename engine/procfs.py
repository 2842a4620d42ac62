"""/proc/PID/maps, as the kernel prints it.

Models fs/proc/task_mmu.c:show_map_vma(): start-end, rwx and p/s, the file
offset (pgoff << PAGE_SHIFT for a file, 0 for anonymous memory), device,
inode and name. A MAP_SHARED anonymous mapping is a shmem file that shows
as "/dev/zero (deleted)" on device 00:01.
"""

from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import VM_EXEC, VM_MAYSHARE, VM_READ, VM_WRITE, VMA, State
from engine.pagetable import PRESENT, ZERO_PAGE


def vma_perms(vma: VMA) -> str:
    """The rwxp column show_map_vma() prints: s for VM_MAYSHARE, else p."""
    return (
        ("r" if vma.vm_flags & VM_READ else "-")
        + ("w" if vma.vm_flags & VM_WRITE else "-")
        + ("x" if vma.vm_flags & VM_EXEC else "-")
        + ("s" if vma.vm_flags & VM_MAYSHARE else "p")
    )


def maps_line(state: State, vma: VMA) -> str:
    """One VMA's line, single-spaced (as the verifier normalises the kernel's)."""
    head = f"{vma.vm_start:08x}-{vma.vm_end:08x} {vma_perms(vma)}"
    if vma.shmem is not None:
        inode = state.shmem[vma.shmem].inode
        return f"{head} {vma.vm_pgoff << PAGE_SHIFT:08x} 00:01 {inode} /dev/zero (deleted)"
    return f"{head} 00000000 00:00 0"


def resident_pages(state: State) -> dict[str, dict[str, int]]:
    """Models smaps' Rss per VMA: present entries mapping a real page (the
    zero page is not counted), keyed "start-end" as maps prints the range."""
    found: dict[str, dict[str, int]] = {}
    for name in state.process_names():
        table = state.processes[name].pagetable
        pages: dict[str, int] = {}
        for vma in state.mm_vmas(name):
            count = sum(
                1
                for _, pte in table.items(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT)
                if pte.kind == PRESENT and pte.folio != ZERO_PAGE
            )
            pages[f"{vma.vm_start:08x}-{vma.vm_end:08x}"] = count
        found[name] = pages
    return found


def proc_maps(state: State) -> dict[str, list[str]]:
    """Every live process's maps, keyed by process name."""
    return {
        name: [maps_line(state, v) for v in state.mm_vmas(name)] for name in state.process_names()
    }
