"""/proc/PID/maps, smaps, status (VmPTE) and pagemap, and /proc/kpagecount,
as the kernel shows them.

Models fs/proc/task_mmu.c:show_map_vma(): start-end, rwx and p/s, the file
offset (pgoff << PAGE_SHIFT for a file, 0 for anonymous memory), device,
inode and name. A MAP_SHARED anonymous mapping is a shmem file that shows
as "/dev/zero (deleted)" on device 00:01. Page by page, pagemap_read(),
fs/proc/page.c:kpagecount_read() and stable_page_flags().
"""

from engine.mm_constants import HPAGE_PMD_NR, PAGE_SHIFT
from engine.mm_types import VM_EXEC, VM_MAYSHARE, VM_READ, VM_WRITE, VMA, State
from engine.pagetable import PRESENT, SWAP, ZERO_PAGE, Pte, TablePages
from engine.sim.backend import PageRecord, ProcessPages, ProcessTables


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


def page_record(state: State, vpn: int, pte: Pte) -> PageRecord:
    """One entry as pagemap, kpagecount and kpageflags describe it.

    Models pte_to_pagemap_entry() / pagemap_pmd_range_thp() (PM_MMAP_EXCLUSIVE
    when __folio_page_mapped_exclusively(): the page's precise mapcount is 1;
    under a huge PMD every page asks about the head page, pmd_page(); never
    for the zero pages, which vm_normal_page() does not return) and
    kpagecount_read() (folio_precise_page_mapcount() with CONFIG_PAGE_MAPCOUNT:
    the page's PTE mappings plus the folio's PMD mappings; 0 for zero pages).
    """
    addr = vpn << PAGE_SHIFT
    if pte.kind == PRESENT and pte.folio == ZERO_PAGE:
        huge = pte.pmd
        return PageRecord(
            addr,
            PRESENT,
            "huge_zero" if huge else "zero",
            None,
            9 if huge else 0,
            vpn % HPAGE_PMD_NR if huge else 0,
            None,
            None,
            False,
            0,
            False,
            pte.pmd,
        )
    folio = state.folios.get(pte.folio) if pte.kind != SWAP else None
    if folio is None:  # a swap entry names a slot, not a folio
        return PageRecord(addr, pte.kind, None, None, None, None, None, None, True, 0, False, False)
    mapcount = folio.mapcount[pte.page] + folio.entire_mapcount
    asked = folio.mapcount[0] + folio.entire_mapcount if pte.pmd else mapcount
    return PageRecord(
        addr,
        pte.kind,
        None,
        folio.id,
        folio.order,
        pte.page,
        folio.index + pte.page,
        folio.mapping,
        folio.shmem is None,
        mapcount,
        pte.kind == PRESENT and asked == 1,
        pte.pmd,
    )


def process_pages(state: State, name: str) -> ProcessPages:
    """A process's populated pages, and its PMD-mapped anonymous pages per
    VMA (smaps_pmd_entry()'s AnonHugePages)."""
    table = state.processes[name].pagetable
    records = [page_record(state, vpn, pte) for vpn, pte in table.items()]
    huge: dict[str, int] = {}
    for vma in state.mm_vmas(name):
        huge[f"{vma.vm_start:08x}-{vma.vm_end:08x}"] = sum(
            1
            for _, pte in table.items(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT)
            if pte.pmd and pte.kind == PRESENT and pte.folio != ZERO_PAGE
        )
    return ProcessPages(records, huge)


def all_pages(state: State) -> dict[str, ProcessPages]:
    """Every live process's pages, keyed by process name."""
    return {name: process_pages(state, name) for name in state.process_names()}


def populated_pages(state: State) -> int:
    """How many page records the processes' tables hold (pages x processes)."""
    return sum(len(mm.pagetable) for mm in state.processes.values())


def table_pages(state: State) -> dict[str, TablePages]:
    """Every live process's page-table pages, by level: what /proc/PID/status
    counts as VmPTE (task_mem(): mm_pgtables_bytes() in kB, 4 kB a table)."""
    return {name: state.processes[name].pagetable.tables() for name in state.process_names()}


def page_tables(state: State) -> dict[str, ProcessTables]:
    """table_pages() as a backend reports them: how many, and which."""
    return {name: ProcessTables(t.pages, t) for name, t in table_pages(state).items()}
