"""Kernel memory the mm metadata costs, and what an rmap walk of each folio visits.

Ours. The RELOCATE_ANON series exists to cut this metadata ("a
proliferation of unreclaimable, unmovable kernel metadata"), and so does the
COW-context proposal, so every state can say what it holds and what that
costs under its rmap model: VMAs, anon_vmas and anon_vma_chains (Linux
6.18), or VMAs, COW contexts and their remap entries (the proposal).

Object sizes under anon_vma are the slab object sizes of x86-64 Linux 6.18,
read from /proc/slabinfo (objsize column) of the 6.18.44 host these tests
run on: vm_area_struct 192, anon_vma 104, anon_vma_chain 64 bytes. The
proposal's objects exist in no running kernel, so their sizes are computed
(COW_SIZES_SOURCE): the method, applied to struct anon_vma, gives 96 bytes,
the slab's 104 less the free pointer SLAB_TYPESAFE_BY_RCU keeps outside the
object (docs/cow-context.md section 5).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

from engine.cow_context import cow_context_walk, remap_vmas
from engine.mm_types import Folio, RmapModel, State
from engine.rmap import folio_anon_vma

VM_AREA_STRUCT_BYTES = 192
ANON_VMA_BYTES = 104
ANON_VMA_CHAIN_BYTES = 64
SIZES_SOURCE = "/proc/slabinfo objsize, x86-64 Linux 6.18.44"

COW_CONTEXT_BYTES = 96
"""struct cow_context of include/linux/mm_types.h@1be9d553: refcount_t 4
(+4 padding), mm 8, remap_mt 16 (maple_tree: lock 4, ma_flags 4, ma_root 8),
parent 8, children 16, siblings 16, rcu 16, list_write_lock 4 and
concurrent_unmap_lock 4 (mm_init_cow_context@a4ac1966): 96 bytes, allocated
by kzalloc, so from kmalloc-96."""
DYNARRAY_HEADER_BYTES = 8
"""struct dynarray { int nr, cap; void *contents[]; } (mm/cow_context.c@a4ac1966):
8 bytes and 8 per slot, kmalloc_flex()'d, so rounded up to a kmalloc bucket."""
MAPLE_NODE_BYTES = 256
MAPLE_NODE_SLOTS = 16
"""struct maple_node is 256 bytes; a maple_range_64 leaf holds 16 slots, and
every range stored or left empty between stored ones takes a slot (mainline's
lib/maple_tree.c layout, not read at the branch's commit [inferred])."""
COW_SIZES_SOURCE = (
    "computed for x86-64 (LP64, no lock debugging): struct cow_context"
    " (include/linux/mm_types.h@1be9d553) 96 bytes from kmalloc-96; struct dynarray"
    " (mm/cow_context.c@a4ac1966) 8 + 8 * cap bytes rounded up to its kmalloc bucket;"
    " maple_node 256 bytes per 16 slots (mainline layout, inferred)"
)
KMALLOC_BUCKETS = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
MAX_WALKED_FOLIOS = 4096
"""Beyond this many anonymous folios a state's walk costs are not counted
(each folio's walk is run to count it)."""


def kmalloc_size(size: int) -> int:
    """The kmalloc bucket a request of `size` bytes is served from."""
    bucket = next((b for b in KMALLOC_BUCKETS if size <= b), None)
    return bucket if bucket is not None else 1 << (size - 1).bit_length()


def maple_nodes(ranges: list[tuple[int, int]]) -> int:
    """Nodes of a maple tree holding the ranges [first, last] (in order):
    one slot per range and per gap around them, 16 slots a leaf, and the
    internal nodes above the leaves; an empty tree has none."""
    if not ranges:
        return 0
    slots, prev = 0, -1
    for first, last in ranges:
        slots += 1 + (first > prev + 1)
        prev = last
    slots += 1  # the empty range up to ULONG_MAX
    nodes = level = -(-slots // MAPLE_NODE_SLOTS)
    while level > 1:
        level = -(-level // MAPLE_NODE_SLOTS)
        nodes += level
    return nodes


class WalkCost(NamedTuple):
    """What one folio's rmap walk visits: the VMAs rmap_one is called on,
    the offsets tried (one VMA-tree range lookup each under cow_context; 0
    under anon_vma, one interval-tree query), and the rmap objects visited
    (anon_vmas, or cow_contexts including the skipped exited ones)."""

    vmas: int
    offsets: int
    rmap_objects: int


@dataclass(frozen=True)
class Metadata:
    """How many mm metadata objects a state holds under its rmap model, and
    their kernel memory."""

    rmap_model: RmapModel
    processes: int
    vmas: int
    anon_vmas: int
    anon_vma_chains: int
    folios: int
    cow_contexts: int = 0
    exited_cow_contexts: int = 0
    """Contexts whose mm has gone, kept by children or folios."""
    remap_entries: int = 0
    """Ranges stored in the remap_mts."""
    remap_offsets: int = 0
    """Offsets those entries record, each entry's counted."""
    remap_arrays: int = 0
    """Entries holding a struct dynarray (the others store one offset inline)."""
    remap_array_bytes: int = 0
    maple_nodes: int = 0
    stale_remap_offsets: int = 0
    """Recorded (entry, offset) pairs no VMA of the context's mm maps at
    that offset over those pgoffs."""
    walks: tuple[tuple[WalkCost, int], ...] | None = ()
    """Each distinct walk cost and how many folios have it; None past
    MAX_WALKED_FOLIOS."""

    @property
    def bytes(self) -> int:
        """Kernel memory of the VMAs and the rmap's objects."""
        vmas = self.vmas * VM_AREA_STRUCT_BYTES
        if self.rmap_model == "cow_context":
            contexts = self.cow_contexts * COW_CONTEXT_BYTES
            return vmas + contexts + self.remap_array_bytes + self.maple_nodes * MAPLE_NODE_BYTES
        return vmas + self.anon_vmas * ANON_VMA_BYTES + self.anon_vma_chains * ANON_VMA_CHAIN_BYTES

    @property
    def sizes_source(self) -> str:
        """Where the object sizes come from."""
        if self.rmap_model == "cow_context":
            return f"vm_area_struct: {SIZES_SOURCE}; {COW_SIZES_SOURCE}"
        return SIZES_SOURCE

    def as_dict(self) -> dict[str, object]:
        """The JSON form."""
        walks = None
        if self.walks is not None:
            walks = [{**cost._asdict(), "folios": n} for cost, n in self.walks]
        return {
            "rmap_model": self.rmap_model,
            "processes": self.processes,
            "vmas": self.vmas,
            "anon_vmas": self.anon_vmas,
            "anon_vma_chains": self.anon_vma_chains,
            "folios": self.folios,
            "cow_contexts": self.cow_contexts,
            "exited_cow_contexts": self.exited_cow_contexts,
            "remap_entries": self.remap_entries,
            "remap_offsets": self.remap_offsets,
            "remap_arrays": self.remap_arrays,
            "remap_array_bytes": self.remap_array_bytes,
            "maple_nodes": self.maple_nodes,
            "stale_remap_offsets": self.stale_remap_offsets,
            "bytes": self.bytes,
            "sizes_source": self.sizes_source,
            "rmap_walks": walks,
        }


def metadata(state: State, walks: bool = True) -> Metadata:
    """Count a snapshot's metadata objects (each chain counted once) and,
    with `walks`, the walk of every anonymous folio (else `walks` is None)."""
    contexts = list(state.cow_contexts.values())
    entries = [r for c in contexts for r in c.remaps]
    return Metadata(
        rmap_model=state.rmap_model,
        processes=len(state.processes),
        vmas=len(state.vmas),
        anon_vmas=len(state.anon_vmas),
        anon_vma_chains=sum(len(v.avc) for v in state.vmas.values()),
        folios=len(state.folios),
        cow_contexts=len(contexts),
        exited_cow_contexts=sum(c.mm is None for c in contexts),
        remap_entries=len(entries),
        remap_offsets=sum(len(r.offsets) for r in entries),
        remap_arrays=sum(r.cap > 0 for r in entries),
        remap_array_bytes=sum(
            kmalloc_size(DYNARRAY_HEADER_BYTES + 8 * r.cap) for r in entries if r.cap
        ),
        maple_nodes=sum(maple_nodes([(r.first, r.last) for r in c.remaps]) for c in contexts),
        stale_remap_offsets=stale_remap_offsets(state),
        walks=walk_costs(state) if walks else None,
    )


def stale_remap_offsets(state: State) -> int:
    """Recorded offsets that no VMA of the context's mm maps at that offset
    anywhere over the entry's pgoffs (the walk tries them, and finds nothing)."""
    return sum(
        not remap_vmas(state, ctx, r, offset)
        for ctx in state.cow_contexts.values()
        for r in ctx.remaps
        for offset in r.offsets
    )


def walk_costs(state: State) -> tuple[tuple[WalkCost, int], ...] | None:
    """What an rmap walk of each anonymous folio visits, as each distinct
    cost with how many folios have it (fewest VMAs first); None past
    MAX_WALKED_FOLIOS."""
    folios: list[Folio] = []
    for folio in state.folios.values():  # stops past the limit, not at the end
        if folio.shmem is None:
            folios.append(folio)
            if len(folios) > MAX_WALKED_FOLIOS:
                return None
    costs: Counter[WalkCost] = Counter()
    if state.rmap_model == "cow_context":
        for folio in folios:
            walk = cow_context_walk(state, folio, find_missed=False)
            costs[WalkCost(walk.vmas, walk.offsets, len(walk.contexts))] += 1
        return tuple(sorted(costs.items()))
    # rmap_walk_anon()'s count without building its list: per anon_vma, the
    # pgoff ranges of the VMAs in its tree, each folio's index against them.
    trees: dict[int | None, list[tuple[int, int]]] = {}
    for folio in folios:
        ranges = trees.get(folio.mapping)
        if ranges is None:
            av = folio_anon_vma(state, folio)
            chained = [state.vmas[v] for v in av.chains if v in state.vmas] if av else []
            ranges = trees[folio.mapping] = [(v.vm_pgoff, v.vm_pgoff + v.pages) for v in chained]
        first, end = folio.index, folio.index + folio.nr_pages
        found = sum(lo < end and first < hi for lo, hi in ranges)
        costs[WalkCost(found, 0, int(folio.mapping in state.anon_vmas))] += 1
    return tuple(sorted(costs.items()))
