"""What runs a scenario's calls: the simulated kernel or the real one.

The scenario interpreter evaluates expressions and hands each call, store and
load to a backend. `engine.sim.simulation.Simulation` models Linux 6.18 step by step;
`engine.verify.real.RealMachine` runs the same calls for real on the host so
the two can be compared (mainline calls only).
"""

from dataclasses import dataclass, field
from typing import Protocol

from engine.pagetable import TablePages


@dataclass(frozen=True)
class CallResult:
    """One statement's outcome, as the JSON contract reports it.

    `result` is "ok", an errno name ("EINVAL") or "SIGSEGV". `value` is the
    call's C return value as a signed integer (-1 on failure, the address
    for mmap/mremap, 0 for munmap), or None for a store or load.
    """

    result: str
    value: int | None


@dataclass(frozen=True, slots=True)
class PageRecord:
    """One populated page of a process, as /proc/PID/pagemap, /proc/kpagecount
    and /proc/kpageflags describe it (fs/proc/task_mmu.c:pagemap_read(),
    fs/proc/page.c).

    `entry` is "present", "swap" or "migration". `zero` is None, "zero" or
    "huge_zero"; a zero page has no `folio`. `folio` is an identifier that
    names the same folio in every process (the simulator's folio id, the
    real kernel's head PFN, never shown). `index` (the page's pgoff:
    folio->index + page_in_folio) and `mapping` (the anon_vma id) only the
    simulator knows; the real kernel reports None. `mapcount` is the page's
    own as kpagecount counts it (folio_precise_page_mapcount: its PTE
    mappings plus the folio's PMD mappings); `exclusive` is pagemap's
    PM_MMAP_EXCLUSIVE (a present page mapped exactly once). A field the
    real kernel cannot show without root is None.
    """

    addr: int
    entry: str
    zero: str | None
    folio: int | None
    order: int | None
    page_in_folio: int | None
    index: int | None
    mapping: int | None
    anon: bool | None
    mapcount: int | None
    exclusive: bool
    pmd_mapped: bool | None


# The PageRecord fields a comparison can use: the real kernel shows all of
# them to root (PFNs, kpagecount, kpageflags), only pagemap's bits to others.
PAGE_FIELDS = ("entry", "zero", "folio", "order", "page_in_folio", "anon", "mapcount", "exclusive")
PAGEMAP_FIELDS = ("entry", "exclusive")


@dataclass(frozen=True)
class ProcessPages:
    """One process's populated pages in address order, per VMA ("start-end")
    how many pages PMD-mapped anonymous THPs cover (smaps AnonHugePages, the
    huge zero page not counted), and which PageRecord fields are known."""

    pages: list[PageRecord]
    anon_huge: dict[str, int] = field(default_factory=dict)
    fields: tuple[str, ...] = PAGE_FIELDS


NO_TABLES = TablePages(frozenset(), frozenset(), frozenset())


@dataclass(frozen=True)
class ProcessTables:
    """One process's page-table pages, as mm_pgtables_bytes() counts them
    and /proc/PID/status shows them (VmPTE / 4 kB): PTE tables, the tables
    deposited with huge PMDs, PMD and PUD tables.

    The simulator knows which tables (`tables`: the stack's and the vDSO's
    among them, not the program image's, which it does not model). The
    kernel shows only how many (`pages`), and which tables the executor's
    own mappings (its program, stack, vDSO) held before the scenario began
    (`own`): a table both have is counted once, so the simulator's count
    to compare is that of tables.union(own).
    """

    pages: int
    tables: TablePages | None = None
    own: TablePages = NO_TABLES


class Backend(Protocol):
    """The calls a scenario can make, each in the named process."""

    def syscall(self, process: str, name: str, args: list[int]) -> CallResult:
        """Run a known call (mmap, munmap, mremap, mprotect, madvise, memset,
        pin, unpin, ...) with evaluated 64-bit unsigned arguments."""
        ...

    def fork(self, parent: str, child: str) -> CallResult:
        """Fork `parent`; the new process is named `child`."""
        ...

    def store(self, process: str, addr: int, value: int) -> CallResult:
        """Write one byte: a write fault if the page is not writable yet."""
        ...

    def load(self, process: str, addr: int) -> CallResult:
        """Read one byte: a read fault maps the zero page if nothing is there."""
        ...

    def maps(self) -> dict[str, list[str]]:
        """Every live process's VMAs as /proc/PID/maps prints them."""
        ...

    def procmap_query(self, process: str, addr: int) -> tuple[int, int] | None:
        """The VMA covering addr, (start, end), as the PROCMAP_QUERY ioctl on
        the process's /proc/PID/maps answers with no flags; None for ENOENT."""
        ...

    def resident(self) -> dict[str, dict[str, int]]:
        """Every live process's resident pages per VMA ("start-end" ->
        pages), as /proc/PID/smaps counts Rss (the zero page not counted)."""
        ...

    def pages(self) -> dict[str, ProcessPages]:
        """Every live process's populated pages, page by page."""
        ...

    def page_tables(self) -> dict[str, ProcessTables]:
        """Every live process's page-table pages (VmPTE)."""
        ...
