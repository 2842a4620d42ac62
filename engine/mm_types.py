"""The kernel's memory-management objects, as immutable values.

Models include/linux/mm_types.h (struct vm_area_struct, struct folio,
struct mm_struct) and include/linux/rmap.h (struct anon_vma, struct
anon_vma_chain). Every object is a frozen value keyed by an id in a
persistent map, so a snapshot after each inner step shares all unchanged
objects with the one before it: stepping back costs what stepping forward
does. Folios come in runs where many are alike (FolioRun, Folios: ours).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from immutables import Map

from engine.mm_constants import EXEC_MAPPINGS, PAGE_SHIFT
from engine.pagetable import PMD_SHIFT, PageTable

# vm_flags bits (include/linux/mm.h, x86-64).
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYEXEC = 0x00000040
VM_MAYSHARE = 0x00000080
VM_GROWSDOWN = 0x00000100
VM_PFNMAP = 0x00000400
VM_LOCKED = 0x00002000
VM_IO = 0x00004000
VM_SEQ_READ = 0x00008000
VM_RAND_READ = 0x00010000
VM_DONTCOPY = 0x00020000
VM_DONTEXPAND = 0x00040000
VM_LOCKONFAULT = 0x00080000
VM_ACCOUNT = 0x00100000
VM_NORESERVE = 0x00200000
VM_HUGETLB = 0x00400000
VM_WIPEONFORK = 0x02000000
VM_DONTDUMP = 0x04000000
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_MERGEABLE = 0x80000000

VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT

VM_FLAG_NAMES = {
    VM_READ: "read",
    VM_WRITE: "write",
    VM_EXEC: "exec",
    VM_SHARED: "shared",
    VM_MAYREAD: "mayread",
    VM_MAYWRITE: "maywrite",
    VM_MAYEXEC: "mayexec",
    VM_MAYSHARE: "mayshare",
    VM_GROWSDOWN: "growsdown",
    VM_PFNMAP: "pfnmap",
    VM_LOCKED: "locked",
    VM_IO: "io",
    VM_SEQ_READ: "seq_read",
    VM_RAND_READ: "rand_read",
    VM_DONTCOPY: "dontcopy",
    VM_DONTEXPAND: "dontexpand",
    VM_LOCKONFAULT: "lockonfault",
    VM_ACCOUNT: "account",
    VM_NORESERVE: "noreserve",
    VM_HUGETLB: "hugetlb",
    VM_WIPEONFORK: "wipeonfork",
    VM_DONTDUMP: "dontdump",
    VM_MIXEDMAP: "mixedmap",
    VM_HUGEPAGE: "hugepage",
    VM_NOHUGEPAGE: "nohugepage",
    VM_MERGEABLE: "mergeable",
}


def flag_names(flags: int) -> list[str]:
    """The names of the set vm_flags bits, lowest bit first."""
    return [name for bit, name in VM_FLAG_NAMES.items() if flags & bit]


GUP_PIN_COUNTING_BIAS = 1024


@dataclass(frozen=True, slots=True)
class VMA:
    """struct vm_area_struct: a range of one process's address space.

    `avc` lists the anon_vmas this VMA is chained to, newest first, as the
    kernel's vma->anon_vma_chain list does; each entry stands for one
    struct anon_vma_chain. `shmem` names the shmem object of a MAP_SHARED
    anonymous mapping (its vm_file), None for private anonymous memory.

    Under the cow_context rmap model (engine.cow_context) there are no
    anon_vmas: `anon_vma` is the branch's DUMMY_ANON_VMA flag ("faulted"),
    held as the id of the VMA's mm's cow_context (the context the branch
    reaches through vma->vm_mm, so a folio faulted here points at it), and
    `avc` stays empty.
    """

    id: int
    mm: str
    vm_start: int
    vm_end: int
    vm_pgoff: int
    vm_flags: int
    anon_vma: int | None = None
    avc: tuple[int, ...] = ()
    shmem: int | None = None

    @property
    def pages(self) -> int:
        """vma_pages(): the VMA's length in pages."""
        return (self.vm_end - self.vm_start) >> PAGE_SHIFT

    def is_anonymous(self) -> bool:
        """vma_is_anonymous(): no vm_ops, so no file and no shmem object."""
        return self.shmem is None


@dataclass(frozen=True, slots=True)
class AnonVMA:
    """struct anon_vma: the rmap's entry point from a folio to its VMAs.

    `chains` holds the VMAs whose anon_vma_chain links them here: the
    kernel's interval tree, keyed in the kernel by each VMA's pgoff range.
    """

    id: int
    root: int
    parent: int
    refcount: int = 1
    num_children: int = 0
    num_active_vmas: int = 0
    chains: frozenset[int] = frozenset()


class Folio(NamedTuple):
    """struct folio: 1 << order pages of anonymous (or shmem) memory.

    `mapping` is the anon_vma id that folio->mapping points at (with
    FOLIO_MAPPING_ANON set), `index` the pgoff of the head page in that
    anon_vma's VMAs. Under the cow_context rmap model, `mapping` is the
    cow_context the folio points at (the branch's folio_cow_context(); its
    folio->mapping is then only the FOLIO_MAPPING_ANON bit). Mapcounts are per page (PTE mappings) plus
    `entire_mapcount` for PMD mappings; `pincount` counts FOLL_PIN pins.
    """

    id: int
    order: int
    mapping: int | None
    index: int  # type: ignore[assignment]  # the kernel's name; shadows tuple.index
    mapcount: tuple[int, ...]
    anon_exclusive: tuple[bool, ...]
    entire_mapcount: int = 0
    pincount: int = 0
    shmem: int | None = None
    lazyfree: bool = False
    """MADV_FREE'd (PG_swapbacked clear): reclaim may drop it without swap."""
    dirty: bool = False
    """Written through a mapping since the kernel last saw it clean. A
    lazyfree folio written since MADV_FREE is kept by reclaim, swap-backed
    again (try_to_unmap_one); a clean shmem folio is dropped from the page
    cache by reclaim, a dirty one kept when there is no swap to write it to."""
    data: int = 0
    """Bit i set: page i of a large folio holds a byte that is not zero (the
    scenario stored one). Only splitting a large folio looks at contents
    (try_to_map_unused_to_zeropage), so small folios leave it 0."""

    @property
    def nr_pages(self) -> int:
        """folio_nr_pages()."""
        return 1 << self.order

    @property
    def total_mapcount(self) -> int:
        """folio_mapcount(): every PTE mapping plus each PMD mapping."""
        return sum(self.mapcount) + self.entire_mapcount

    @property
    def refcount(self) -> int:
        """folio_ref_count(), as mappings and pins raise it.

        A small folio counts a pin as GUP_PIN_COUNTING_BIAS references;
        a large one keeps pins in _pincount and adds one reference each.
        """
        bias = 1 if self.order else GUP_PIN_COUNTING_BIAS
        return self.total_mapcount + self.pincount * bias

    def maybe_dma_pinned(self) -> bool:
        """folio_maybe_dma_pinned()."""
        return self.pincount > 0

    def maybe_mapped_shared(self) -> bool:
        """folio_maybe_mapped_shared(): some page is mapped more than once."""
        return self.entire_mapcount + max(self.mapcount, default=0) > 1


# --- ours: runs of alike small folios ---------------------------------------
#
# Not a kernel object: the kernel has one struct folio per page a memset
# faults in. Here `nr` order-0 anonymous folios with consecutive ids, the
# same folio->mapping, consecutive folio->index (index + i), each mapped
# once, AnonExclusive, unpinned and clean (what do_anonymous_page() leaves
# for every page of a large write fault) are one FolioRun until something
# touches one of them: storing any folio of a run (a COW, a pin, a fork's
# mapcount, a split, reclaim) splits the run there and keeps that folio as an
# explicit Folio. Readers see a mapping of id -> Folio (`Folios`), each folio
# of a run made when asked for, so the engine reads folios as before; only
# the fault path, the RELOCATE_ANON walk and the checks ask for runs, to
# handle a run's folios as one.

RUN_BLOCK_SHIFT = 9
"""A run never crosses a block of 512 ids (first >> 9 == (end - 1) >> 9): a
lookup by id visits one block's few runs, and a split copies only those."""

_MAPPED_ONCE = (1,)
_EXCLUSIVE = (True,)


class FolioRun(NamedTuple):
    """Ours, not a kernel object: `nr` struct folios compressed into one.

    Order-0 folios, ids first ... first + nr - 1: folio first + i has
    folio->mapping `mapping` and folio->index `index` + i, one PTE mapping,
    AnonExclusive, no pin, clean, not MADV_FREE'd."""

    first: int
    nr: int
    mapping: int | None
    index: int  # type: ignore[assignment]  # the kernel's name; shadows tuple.index

    @property
    def end(self) -> int:
        return self.first + self.nr

    def folio(self, ident: int) -> Folio:
        """The Folio that id `ident` of the run stands for."""
        return Folio(
            ident, 0, self.mapping, self.index + ident - self.first, _MAPPED_ONCE, _EXCLUSIVE
        )

    def part(self, lo: int, hi: int) -> FolioRun:
        """The run's ids lo ... hi - 1 as a run of their own."""
        return FolioRun(lo, hi - lo, self.mapping, self.index + lo - self.first)


def _blocked(run: FolioRun) -> Iterator[FolioRun]:
    """`run` cut at every RUN_BLOCK_SHIFT block boundary."""
    lo, end = run.first, run.end
    while lo < end:
        hi = min(end, ((lo >> RUN_BLOCK_SHIFT) + 1) << RUN_BLOCK_SHIFT)
        yield run.part(lo, hi)
        lo = hi


def _joined(runs: list[FolioRun]) -> tuple[FolioRun, ...]:
    """Runs of one block in id order, each that continues the one before
    (next id, same mapping, next index) joined to it."""
    out: list[FolioRun] = []
    for run in sorted(runs):
        if out:
            prev = out[-1]
            if (
                prev.end == run.first
                and prev.mapping == run.mapping
                and prev.index + prev.nr == run.index
            ):
                out[-1] = FolioRun(prev.first, prev.nr + run.nr, prev.mapping, prev.index)
                continue
        out.append(run)
    return tuple(out)


class Folios:
    """A snapshot's folios by id: explicit Folios and FolioRuns, persistent
    (ours: the kernel has no such store, only the folios themselves).

    Reads answer as a Map[int, Folio] would (get, [], in, len, iteration);
    every edit returns a new Folios sharing what it did not change.
    """

    __slots__ = ("_explicit", "_runs", "_len")

    def __init__(
        self,
        explicit: Map[int, Folio] | None = None,
        runs: Map[int, tuple[FolioRun, ...]] | None = None,
        length: int = 0,
    ) -> None:
        self._explicit: Map[int, Folio] = explicit if explicit is not None else Map()
        self._runs: Map[int, tuple[FolioRun, ...]] = runs if runs is not None else Map()
        self._len = length

    # --- reading, as a Map -------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def run_holding(self, ident: int) -> FolioRun | None:
        """The run that holds folio `ident`, None when it is explicit or absent."""
        for run in self._runs.get(ident >> RUN_BLOCK_SHIFT, ()):
            if run.first <= ident < run.first + run.nr:
                return run
        return None

    def get(self, ident: int, default: Folio | None = None) -> Folio | None:
        folio = self._explicit.get(ident)
        if folio is not None:
            return folio
        run = self.run_holding(ident)
        return default if run is None else run.folio(ident)

    def __getitem__(self, ident: int) -> Folio:
        folio = self.get(ident)
        if folio is None:
            raise KeyError(ident)
        return folio

    def __contains__(self, ident: object) -> bool:
        if not isinstance(ident, int):
            return False
        return ident in self._explicit or self.run_holding(ident) is not None

    def __iter__(self) -> Iterator[int]:
        yield from self._explicit
        for run in self.runs():
            yield from range(run.first, run.end)

    def keys(self) -> Iterator[int]:
        return iter(self)

    def values(self) -> Iterator[Folio]:
        """Every folio, each folio of a run made as it is reached."""
        yield from self._explicit.values()
        for run in self.runs():
            for ident in range(run.first, run.end):
                yield run.folio(ident)

    def runs(self) -> Iterator[FolioRun]:
        """The runs, in no particular order of blocks (each block's in id order)."""
        for block in self._runs.values():
            yield from block

    def explicit(self) -> Iterator[Folio]:
        """The folios kept one by one (not in a run)."""
        return iter(self._explicit.values())

    def runs_over(self, first: int, end: int) -> list[FolioRun] | None:
        """The runs that hold ids first ... end - 1, cut to that range, in id
        order; None unless every one of those ids is in a run."""
        found: list[FolioRun] = []
        at = first
        for block in range(first >> RUN_BLOCK_SHIFT, ((end - 1) >> RUN_BLOCK_SHIFT) + 1):
            for run in self._runs.get(block, ()):
                if run.end <= at or run.first >= end:
                    continue
                if run.first > at:
                    return None
                hi = min(run.end, end)
                found.append(run.part(at, hi))
                at = hi
        return found if at >= end else None

    # --- editing -----------------------------------------------------------

    def _cut(
        self, runs: dict[int, tuple[FolioRun, ...]], lo: int, hi: int
    ) -> tuple[dict[int, tuple[FolioRun, ...]], list[FolioRun]]:
        """Take ids lo ... hi - 1 out of the runs (blocks already edited are
        in `runs`): the blocks as left, and the pieces taken out."""
        taken: list[FolioRun] = []
        for block in range(lo >> RUN_BLOCK_SHIFT, ((hi - 1) >> RUN_BLOCK_SHIFT) + 1):
            old = runs.get(block)
            if old is None:
                old = self._runs.get(block, ())
            if not any(r.first < hi and r.end > lo for r in old):
                continue
            kept: list[FolioRun] = []
            for run in old:
                a, b = max(run.first, lo), min(run.end, hi)
                if a >= b:
                    kept.append(run)
                    continue
                taken.append(run.part(a, b))
                if run.first < a:
                    kept.append(run.part(run.first, a))
                if b < run.end:
                    kept.append(run.part(b, run.end))
            runs[block] = tuple(sorted(kept))
        return runs, taken

    def _with(
        self, explicit: Map[int, Folio], runs: dict[int, tuple[FolioRun, ...]], length: int
    ) -> Folios:
        if not runs:
            return Folios(explicit, self._runs, length)
        with self._runs.mutate() as new:
            for block, pieces in runs.items():
                if pieces:
                    new[block] = pieces
                else:
                    new.pop(block, None)
            blocks = new.finish()
        return Folios(explicit, blocks, length)

    def set(self, ident: int, folio: Folio) -> Folios:
        """Store `folio` as folio `ident` (one of a run leaves the run)."""
        return self.set_many((folio,))

    def set_many(self, folios: Iterable[Folio]) -> Folios:
        """Store many folios at once; those of a run leave it."""
        runs: dict[int, tuple[FolioRun, ...]] = {}
        length = self._len
        with self._explicit.mutate() as explicit:
            for folio in folios:
                if folio.id not in explicit:
                    runs, taken = self._cut(runs, folio.id, folio.id + 1)
                    if not taken:
                        length += 1
                explicit[folio.id] = folio
            edited = explicit.finish()
        return self._with(edited, runs, length)

    def delete(self, ident: int) -> Folios:
        """Free folio `ident` (KeyError when there is none)."""
        if ident in self._explicit:
            return Folios(self._explicit.delete(ident), self._runs, self._len - 1)
        runs, taken = self._cut({}, ident, ident + 1)
        if not taken:
            raise KeyError(ident)
        return self._with(self._explicit, runs, self._len - 1)

    def add_runs(self, new: Iterable[FolioRun]) -> Folios:
        """Store runs of fresh ids (none of them may exist yet)."""
        runs: dict[int, list[FolioRun]] = {}
        length = self._len
        for run in new:
            for piece in _blocked(run):
                block = piece.first >> RUN_BLOCK_SHIFT
                if block not in runs:
                    runs[block] = list(self._runs.get(block, ()))
                runs[block].append(piece)
                length += piece.nr
        return self._with(
            self._explicit, {b: _joined(pieces) for b, pieces in runs.items()}, length
        )

    def remap(self, first: int, end: int, mapping: int, index: int) -> Folios:
        """Set folio->mapping to `mapping` and folio->index to index + i for
        folios first + i < end, all of them in runs (runs_over() said so)."""
        runs, taken = self._cut({}, first, end)
        assert sum(r.nr for r in taken) == end - first
        moved = FolioRun(first, end - first, mapping, index)
        for piece in _blocked(moved):
            block = piece.first >> RUN_BLOCK_SHIFT
            runs[block] = _joined([*runs[block], piece])
        return self._with(self._explicit, runs, self._len)


def exec_page_tables() -> PageTable:
    """The page tables a process starts with (ours): exec maps its stack,
    [vvar] and [vdso] (EXEC_MAPPINGS) and their first touches give each a
    PTE table, with the PMD and PUD tables above. They hold no page the
    engine shows, but a scenario's mapping next to them shares them: a
    fault there allocates no table, munmap does not free it, and mremap
    from there allocates one at the destination even for no pages. (A
    fork's child has copies: copy_page_range() copies the VM_PFNMAP [vvar]
    and the stack.) The program image's own tables, far below the mmap
    area, are not modelled."""
    editor = PageTable().edit()
    for start, end in EXEC_MAPPINGS:
        for pmd in range(
            start >> (PAGE_SHIFT + PMD_SHIFT), ((end - 1) >> (PAGE_SHIFT + PMD_SHIFT)) + 1
        ):
            editor.alloc_table(pmd)
    return editor.commit()


EXEC_PAGE_TABLES = exec_page_tables()


@dataclass(frozen=True, slots=True)
class MM:
    """struct mm_struct: one process's address space.

    `vmas` are VMA ids ordered by vm_start (the maple tree's order).
    """

    name: str
    pid: int
    vmas: tuple[int, ...] = ()
    pagetable: PageTable = EXEC_PAGE_TABLES
    has_pinned: bool = False
    parent: str | None = None
    created: int = 0
    """Creation order: 0 for main, each fork one more than any live process
    (State.process_names() lists processes by it)."""
    cow_context: int | None = None
    """mm->cow_context: the mm's COW context, under the cow_context model."""


RmapModel = Literal["anon_vma", "cow_context"]
"""How the simulated kernel finds the mappings of an anonymous folio:
"anon_vma", Linux 6.18 (checked against the host kernel); "cow_context",
the proposal of Lorenzo Stoakes' branch project/cow-context as read at
commit a4ac19665445540721830ef6014642daddc0eff0 (engine.cow_context), with
CONFIG_COW_CONTEXT_ANON_RMAP on. No kernel anyone runs has it."""

RMAP_MODELS: tuple[RmapModel, ...] = ("anon_vma", "cow_context")


class RemapRange(NamedTuple):
    """One entry of a cow_context's remap_mt: pgoffs [first, last] and the
    non-zero offsets (vm_start >> PAGE_SHIFT) - vm_pgoff at which VMAs of
    the context's mm map them, in the order the branch's dynarray keeps.

    `cap` is 0 for a "simple" entry (one offset stored in the slot, no
    allocation), else the capacity of its struct dynarray (2, 4, 8, ...).
    """

    first: int
    last: int
    offsets: tuple[int, ...]
    cap: int = 0


@dataclass(frozen=True, slots=True)
class CowContext:
    """struct cow_context (include/linux/mm_types.h of the branch): one per
    mm, linked into the fork tree, able to outlive its mm.

    `mm` is the process, None once drop_cow_context() cleared it; `parent`
    the forking mm's context; `children` the contexts forked from this
    one, newest first (list_add_rcu adds at the head); `refcnt` one for
    the mm, one per child, one per folio pointing here; `remaps` the
    remap_mt's entries in pgoff order.
    """

    id: int
    mm: str | None
    parent: int | None = None
    children: tuple[int, ...] = ()
    refcnt: int = 1
    remaps: tuple[RemapRange, ...] = ()


@dataclass(frozen=True, slots=True)
class ShmemObject:
    """The shmem file behind a MAP_SHARED anonymous mapping (/dev/zero)."""

    id: int
    inode: int
    pages: int
    cache: Map[int, int] = field(default_factory=Map)
    """The page cache: page index -> folio id."""


class State(NamedTuple):
    """The whole simulated machine at one instant: a snapshot.

    Every field is an immutable value, so a snapshot is taken by keeping a
    reference; the next step's state shares all it did not change. (A
    NamedTuple: _replace() is cheap on the per-folio paths.)
    """

    processes: Map[str, MM] = Map()
    vmas: Map[int, VMA] = Map()
    anon_vmas: Map[int, AnonVMA] = Map()
    folios: Folios = Folios()
    shmem: Map[int, ShmemObject] = Map()
    next_id: int = 1
    # The last pid alloc_pid() handed out (Kernel.alloc_pid).
    last_pid: int = 1000
    cow_contexts: Map[int, CowContext] = Map()
    rmap_model: RmapModel = "anon_vma"

    def process_names(self) -> list[str]:
        """The live processes in the order they were created (a Map iterates
        in its keys' hash order, which PYTHONHASHSEED changes)."""
        return sorted(self.processes, key=lambda name: self.processes[name].created)

    def mm_vmas(self, mm: str) -> list[VMA]:
        """The VMAs of process `mm`, in address order."""
        return [self.vmas[v] for v in self.processes[mm].vmas]
