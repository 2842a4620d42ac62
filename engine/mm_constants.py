"""The memory-management constants of x86-64 Linux 6.18, each defined once.

Models the few headers and variables they come from:
arch/x86/include/asm/page_types.h (PAGE_SHIFT, PAGE_SIZE, PAGE_ALIGN's
mask), arch/x86/include/asm/page_64_types.h (TASK_SIZE, 47-bit),
include/linux/huge_mm.h (HPAGE_PMD_ORDER, HPAGE_PMD_NR), the PMD size of
arch/x86/include/asm/pgtable_64_types.h, include/linux/mm.h
(DEFAULT_MAX_MAP_COUNT, the vm.max_map_count default) and mm/mmap.c
(stack_guard_gap, 256 pages unless stack_guard_gap= is given at boot).
EXEC_MAPPINGS are ours: where a process's own mappings above the mmap
area lie with ASLR off and an 8 MiB stack limit, as verify's executor
runs.
"""

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
HPAGE_PMD_ORDER = 9
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER
PMD_SIZE = HPAGE_PMD_NR << PAGE_SHIFT
TASK_SIZE = 0x7FFFFFFFF000  # 47-bit user address space
MAX_MAP_COUNT = 65530  # /proc/sys/vm/max_map_count default
STACK_GUARD_GAP = 256 << PAGE_SHIFT
# [vvar], [vvar_vclock] and [vdso]; [stack]: mapped by exec, shown as no VMA.
EXEC_MAPPINGS = ((0x7FFFF7FF7000, 0x7FFFF7FFF000), (0x7FFFFFFDE000, 0x7FFFFFFFF000))


def page_align(n: int) -> int:
    """Models include/linux/mm.h:PAGE_ALIGN(), wrapping at 2**64 like the
    kernel's unsigned long."""
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & ((1 << 64) - 1)
