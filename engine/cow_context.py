"""The COW-context reverse map: the proposal that would replace anon_vmas.

Models mm/cow_context.c of Lorenzo Stoakes' proof-of-concept branch
project/cow-context (mirrored as kernelorg-mirror/linux_kernel_git_ljs_linux)
at commit a4ac19665445540721830ef6014642daddc0eff0, with its callers in
mm/rmap.c, mm/vma.c and mm/mremap.c at d91a1a12c5871a70ef97dc4725f0ca758f210524
and mm/mmap.c:dup_mmap() at d2a01aae3d447069e9359a21b355f08d5f240dad, built
with CONFIG_COW_CONTEXT_ANON_RMAP on (the "On" mode: no anon_vmas at all).
A proposal and a research project: no kernel anyone runs has it.

One struct cow_context per mm, linked into the fork tree and outliving its
mm while a child context or a folio holds it; a folio points at the context
of the mm that first mapped it; a move records the VMA's offset
((vm_start >> PAGE_SHIFT) - vm_pgoff) for its pgoff range in the context's
remap_mt instead of rewriting folios; the rmap walk (cow_context_walk) tries
offset 0, then each recorded offset, in the folio's context and then its
descendants. docs/cow-context.md is the design read this module follows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import VMA, CowContext, Folio, RemapRange, State
from engine.sim.trace import Unfinished

if TYPE_CHECKING:
    from engine.sim.kernel import Kernel

COMMIT = "a4ac19665445540721830ef6014642daddc0eff0"
"""The commit of mm/cow_context.c this module models."""
CALLERS_COMMIT = "d91a1a12c5871a70ef97dc4725f0ca758f210524"
"""The commit of the callers in mm/rmap.c, mm/vma.c and mm/mremap.c."""
BRANCH = "project/cow-context (kernelorg-mirror/linux_kernel_git_ljs_linux)"
PROPOSAL = (
    f"the COW-context proposal, branch {BRANCH} at commit {COMMIT[:12]}:"
    " a proof of concept, not a kernel anyone runs"
)

_U64 = (1 << 64) - 1

# --- where the branch is unfinished (its TODOs), and what is modelled there ---

WALK_EXCLUSIVE_STOP = Unfinished(
    f"mm/cow_context.c:walk_context@{COMMIT[:8]}",
    "exclusive folios are moved to the correct Cow context level, so we only"
    " look once. TODO: Races? ... Check again in case fork raced, therwise,"
    " abort the walk we're done. TODO: race vs. fork + unmap in parent.",
    "the walk as coded: an exclusive folio's walk ends after offset 0 of its"
    " own context, before that context's recorded offsets and its"
    " descendants; the rmap check marks each mapping only they reach (a"
    " moved VMA's, or a child's after the parent unmapped or exited: the"
    " folio is exclusive, yet not at the context that maps it)",
)
FORK_NOT_LINKED = Unfinished(
    "mm/mmap.c:dup_mmap@d2a01aae",
    "TODO: race vs. fork + unmap in parent. (mm/cow_context.c:walk_context)",
    "as coded: the child's context joins the parent's children"
    " (dup_cow_context) only after the VMA loop, so until then a walk from"
    " the parent's folios cannot reach the page tables copy_page_range()"
    " already gave the child",
)
SPLIT_REMAP = Unfinished(
    f"mm/vma.c:__split_vma@{CALLERS_COMMIT[:8]}",
    "We duplicate new, then update pgoff, this might still need a remap entry? TODO: Check",
    "cow_context_do_remap(new, orig_addr) as coded: the old offset is taken"
    " from the unsplit VMA's vm_start against the new piece's vm_pgoff",
)
FORK_UNDO = Unfinished(
    "mm/mmap.c:dup_mmap@d2a01aae",
    "TODO: Error path undo... here and elsewhere?",
    "the stated intent: a fork that failed part-way would undo its remap"
    " entries; the model's forks do not fail, so nothing is undone",
)
DUP_ANON_VMA_STUB = Unfinished(
    f"mm/vma.c:dup_anon_vma@{CALLERS_COMMIT[:8]}",
    None,
    "as coded, an empty stub under CONFIG_COW_CONTEXT_ANON_RMAP: the"
    " unfaulted target keeps anon_vma NULL while it now maps the faulted"
    " range's folios, so should_track_remap() is false for it and a later"
    " move re-bases its pgoff (docs/cow-context.md section 2.6, point 4)",
)


# --- lifetime: one context per mm, in the fork tree ---------------------------


def mm_init_cow_context(k: Kernel, mm: str) -> CowContext:
    """Models mm/cow_context.c:mm_init_cow_context(): a zeroed context for a
    new mm, refcount 1 (the mm's), an empty remap_mt."""
    ctx = k.put_cow_context(CowContext(k.new_id(), mm))
    k.put_mm(replace(k.mm(mm), cow_context=ctx.id))
    k.event("mm_init_cow_context", f"cow_context#{ctx.id} for {mm}, refcnt 1 (the mm)")
    return ctx


def dup_cow_context(k: Kernel, child: str, parent: str) -> None:
    """Models mm/cow_context.c:dup_cow_context(): link the child's context
    at the head of the parent's children and take a reference on the parent
    (after dup_mmap()'s VMA loop succeeded)."""
    parent_ctx = k.cow_context(_ctx_id(k.state, parent))
    child_ctx = k.cow_context(_ctx_id(k.state, child))
    k.put_cow_context(replace(child_ctx, parent=parent_ctx.id))
    k.put_cow_context(
        replace(
            parent_ctx,
            children=(child_ctx.id,) + parent_ctx.children,
            refcnt=parent_ctx.refcnt + 1,
        )
    )
    k.event(
        "dup_cow_context",
        f"cow_context#{child_ctx.id} of {child} becomes a child of cow_context#{parent_ctx.id}"
        f" ({parent}), which takes a reference: refcnt {parent_ctx.refcnt + 1}",
    )


def drop_cow_context(k: Kernel, mm: str) -> None:
    """Models mm/cow_context.c:drop_cow_context(): the mm goes away, its
    context stays while children or folios hold it (mm = NULL).

    The branch's caller of drop_cow_context() was not in the copies read;
    the model calls it when exit_mmap() has removed every VMA [inferred]."""
    ident = _ctx_id(k.state, mm)
    k.put_cow_context(replace(k.cow_context(ident), mm=None))
    k.event("drop_cow_context", f"cow_context#{ident}->mm = NULL ({mm} exits)")
    put_cow_context(k, ident)


def put_cow_context(k: Kernel, ident: int, count: int = 1) -> None:
    """Models put_cow_context(): drop `count` references; at zero,
    __put_cow_context()."""
    ctx = k.cow_context(ident)
    if ctx.refcnt > count:
        k.put_cow_context(replace(ctx, refcnt=ctx.refcnt - count))
        return
    k.put_cow_context(replace(ctx, refcnt=0))
    __put_cow_context(k, ident)


def __put_cow_context(k: Kernel, ident: int) -> None:
    """Models mm/cow_context.c:__put_cow_context(): free a context whose
    count reached zero, unlink it from its parent's children and drop the
    parent's reference, cascading upwards while parents reach zero too."""
    current: int | None = ident
    while current is not None:
        ctx = k.cow_context(current)
        parent = None
        if ctx.parent is not None:
            up = k.cow_context(ctx.parent)
            up = replace(
                up, children=tuple(c for c in up.children if c != ctx.id), refcnt=up.refcnt - 1
            )
            k.put_cow_context(up)
            parent = up.id if up.refcnt == 0 else None
        k.free_cow_context(ctx.id)
        k.event(
            "__put_cow_context",
            f"cow_context#{ctx.id} freed with its {len(ctx.remaps)} remap entries"
            + (f"; its parent cow_context#{ctx.parent} loses a reference" if ctx.parent else ""),
        )
        current = parent


def folio_references(k: Kernel, folios: list[Folio], freed: int | None = None) -> None:
    """The references folios hold on the contexts they point at.

    Models mm/rmap.c:__folio_set_anon_cow() (a new anonymous folio takes a
    reference on its context), folio_move_anon_rmap() (a reused folio takes
    one on the faulter's context and drops the old one) and the folio's
    last put dropping its reference (where the branch does this was not in
    the copies read [inferred]). The kernel calls this for every folio it
    stores (`folios`, by their new value) or frees (`freed`).
    """
    deltas: Counter[int] = Counter()
    current = k.state.folios
    for folio in folios:
        old = current.get(folio.id)
        was = old.mapping if old is not None and old.shmem is None else None
        now = folio.mapping if folio.shmem is None else None
        if was != now:
            if now is not None:
                deltas[now] += 1
            if was is not None:
                deltas[was] -= 1
    if freed is not None:
        old = current.get(freed)
        if old is not None and old.shmem is None and old.mapping is not None:
            deltas[old.mapping] -= 1
    contexts = k.state.cow_contexts
    for ident, delta in sorted(deltas.items(), key=lambda item: -item[1]):
        if delta > 0:
            ctx = contexts[ident]
            k.put_cow_context(replace(ctx, refcnt=ctx.refcnt + delta))
    for ident, delta in deltas.items():
        if delta < 0 and ident in k.state.cow_contexts:
            put_cow_context(k, ident, -delta)


def _ctx_id(state: State, mm: str) -> int:
    ident = state.processes[mm].cow_context
    assert ident is not None, f"{mm} has no cow_context"
    return ident


# --- the remap tree: pgoff ranges -> offsets -----------------------------------


def vma_offset(vma: VMA) -> int:
    """(vm_start >> PAGE_SHIFT) - vm_pgoff: 0 for an anonymous VMA that never
    moved, the distance moved (in pages) for a faulted one that did."""
    return (vma.vm_start >> PAGE_SHIFT) - vma.vm_pgoff


def should_track_remap(vma: VMA) -> bool:
    """Models mm/cow_context.c:should_track_remap(): a faulted anonymous VMA
    off its home (should_track_anon_remap). The private-file half
    (should_track_map_private_remap) has nothing to track here: the engine
    maps no files, and shmem mappings are shared."""
    return vma.is_anonymous() and vma.anon_vma is not None and vma_offset(vma) != 0


def _append_value(offsets: tuple[int, ...], new: int) -> tuple[int, ...]:
    """Models __dynarray_append_value(): insertion into the sorted array,
    duplicates refused. The values are compared as the unsigned longs the
    array stores, so a negative offset sorts after every positive one."""
    raw = new & _U64
    i = len(offsets) - 1
    while i >= 0:
        val = offsets[i] & _U64
        if val == raw:
            return offsets
        if val < raw:
            break
        i -= 1
    return offsets[: i + 1] + (new,) + offsets[i + 1 :]


def _append_remap_offset(entry: RemapRange | None, new: int) -> tuple[tuple[int, ...], int]:
    """Models append_remap_offset(): the offsets and capacity an entry has
    once `new` is appended. A simple entry goes through a one-slot array on
    the stack, which grows into an allocated array of 2 even when `new` is
    already there; a full array doubles before the duplicate check."""
    if entry is None or not entry.offsets:
        return (new,), 0
    cap = entry.cap or 1
    if len(entry.offsets) == cap:
        cap *= 2
    return _append_value(entry.offsets, new), cap


def _split_at(remaps: tuple[RemapRange, ...], at: int) -> tuple[RemapRange, ...]:
    """Models split_remap(): an entry straddling `at` becomes two with the
    same offsets (the outer one a dup_remaps() copy)."""
    out: list[RemapRange] = []
    for r in remaps:
        if r.first < at <= r.last:
            out += [r._replace(last=at - 1), r._replace(first=at)]
        else:
            out.append(r)
    return tuple(out)


def _store(
    remaps: tuple[RemapRange, ...], first: int, last: int, entry: RemapRange | None
) -> tuple[RemapRange, ...]:
    """Models mas_store_gfp() over [first, last]: what was there is cut
    away; `entry` (None: EMPTY_REMAPS_ENTRY) takes its place."""
    out: list[RemapRange] = []
    for r in remaps:
        if r.last < first or r.first > last:
            out.append(r)
            continue
        if r.first < first:
            out.append(r._replace(last=first - 1))
        if r.last > last:
            out.append(r._replace(first=last + 1))
    if entry is not None:
        out.append(entry._replace(first=first, last=last))
    return tuple(sorted(out, key=lambda r: r.first))


def _overlapping(remaps: tuple[RemapRange, ...], first: int, last: int) -> list[RemapRange]:
    """Models mas_for_each() over [first, last]: every entry overlapping it."""
    return [r for r in remaps if r.last >= first and r.first <= last]


def add_new_remap(k: Kernel, ident: int, pgoff: int, nr_pages: int, offset: int) -> None:
    """Models mm/cow_context.c:add_new_remap(): split the entries straddling
    either end of [pgoff, pgoff + nr_pages - 1], then add_overlapping_remap():
    gaps get a simple entry of `offset`, existing entries get it appended."""
    ctx = k.cow_context(ident)
    last = pgoff + nr_pages - 1
    remaps = _split_at(_split_at(ctx.remaps, pgoff), last + 1)
    prev = pgoff
    for r in _overlapping(remaps, pgoff, last):
        if r.first > prev:
            remaps = _store(remaps, prev, r.first - 1, RemapRange(prev, r.first - 1, (offset,)))
        offsets, cap = _append_remap_offset(r, offset)
        if (offsets, cap) != (r.offsets, r.cap):
            remaps = _store(remaps, r.first, r.last, RemapRange(r.first, r.last, offsets, cap))
        prev = r.last + 1
    if prev <= last:
        remaps = _store(remaps, prev, last, RemapRange(prev, last, (offset,)))
    k.put_cow_context(replace(ctx, remaps=remaps))
    k.event(
        "add_new_remap",
        f"cow_context#{ident}: offset {offset} recorded for pgoffs {pgoff:#x}-{last:#x}",
        offset=offset,
    )


def find_and_unmap_existing(k: Kernel, ident: int, pgoff: int, nr_pages: int, offset: int) -> None:
    """Models mm/cow_context.c:find_and_unmap_existing(): remove `offset`
    from every entry overlapping [pgoff, pgoff + nr_pages - 1], over each
    entry's whole range (entries are not split here); shrink_remaps() turns
    two offsets into a simple entry and one into none."""
    ctx = k.cow_context(ident)
    remaps = ctx.remaps
    removed = 0
    for r in _overlapping(remaps, pgoff, pgoff + nr_pages - 1):
        if offset not in r.offsets:
            continue
        removed += 1
        i = r.offsets.index(offset)
        rest = r.offsets[:i] + r.offsets[i + 1 :]
        if len(r.offsets) > 2:
            entry: RemapRange | None = r._replace(offsets=rest)
        elif len(r.offsets) == 2:
            entry = RemapRange(r.first, r.last, rest[:1])
        else:
            entry = None
        remaps = _store(remaps, r.first, r.last, entry)
    k.put_cow_context(replace(ctx, remaps=remaps))
    if removed:
        k.event(
            "find_and_unmap_existing",
            f"cow_context#{ident}: offset {offset} removed from {removed} remap"
            f" entr{'y' if removed == 1 else 'ies'} over pgoffs {pgoff:#x}+{nr_pages}",
            offset=offset,
        )


def find_and_remap_existing(
    k: Kernel, ident: int, pgoff: int, nr_pages: int, old: int, new: int
) -> bool:
    """Models mm/cow_context.c:find_and_remap_existing(): rewrite `old` to
    `new` in place in every entry overlapping the range (a multi array is
    not re-sorted); True if any entry held `old`."""
    ctx = k.cow_context(ident)
    remaps = ctx.remaps
    found = False
    for r in _overlapping(remaps, pgoff, pgoff + nr_pages - 1):
        if old not in r.offsets:
            continue
        found = True
        offsets = tuple(new if o == old else o for o in r.offsets)
        remaps = _store(remaps, r.first, r.last, r._replace(offsets=offsets))
    if found:
        k.put_cow_context(replace(ctx, remaps=remaps))
        k.event(
            "find_and_remap_existing",
            f"cow_context#{ident}: offset {old} rewritten to {new} in place",
            old_offset=old,
            new_offset=new,
        )
    return found


def cow_context_vma_unmap(k: Kernel, vma: VMA) -> None:
    """Models mm/cow_context.c:cow_context_vma_unmap() (from remove_vma()):
    a tracked VMA's offset leaves the remap tree over its pgoff range.

    On munmap and exit, free_pgtables() has already run unlink_anon_vmas(),
    which under CONFIG_COW_CONTEXT_ANON_RMAP clears vma->anon_vma, so
    should_track_remap() is false here and the offset stays recorded (the
    order of mainline's vms_complete_munmap_vmas() and exit_mmap(); the
    branch's mm/memory.c was not in the copies read [inferred])."""
    ident, offset = _ctx_id(k.state, vma.mm), vma_offset(vma)
    if should_track_remap(vma):
        find_and_unmap_existing(k, ident, vma.vm_pgoff, vma.pages, offset)
        return
    kept = _overlapping(k.cow_context(ident).remaps, vma.vm_pgoff, vma.vm_pgoff + vma.pages - 1)
    if vma.is_anonymous() and offset and any(offset in r.offsets for r in kept):
        k.event(
            "cow_context_vma_unmap",
            f"vma#{vma.id} has anon_vma NULL (unlink_anon_vmas() ran first):"
            f" should_track_remap() is false, offset {offset} stays in cow_context#{ident}",
            offset=offset,
        )


def cow_context_vma_adjust(k: Kernel, vma: VMA, start: int, end: int) -> None:
    """Models mm/cow_context.c:cow_context_vma_adjust(): before a tracked
    VMA's range changes to [start, end) (at the same offset), unmap its old
    range's entries and add the new range's (commit_merge, __split_vma,
    vma_shrink, expand_downwards)."""
    if not should_track_remap(vma):
        return
    ident, offset = _ctx_id(k.state, vma.mm), vma_offset(vma)
    find_and_unmap_existing(k, ident, vma.vm_pgoff, vma.pages, offset)
    delta = (start - vma.vm_start) >> PAGE_SHIFT
    add_new_remap(k, ident, vma.vm_pgoff + delta, (end - start) >> PAGE_SHIFT, offset)


def __cow_context_do_remap(k: Kernel, vma: VMA, pgoff_orig: int, is_remap: bool) -> None:
    """Models mm/cow_context.c:__cow_context_do_remap(): `vma` is the VMA
    after the move (or the fork's copy); its old offset is pgoff_orig -
    vm_pgoff, its new one its own. Nothing for an untracked VMA; an offset
    back to 0 unmaps the old one; a move first tries to rewrite the old
    offset in place, else the new offset is added. No folio is touched."""
    if not should_track_remap(vma):
        return
    old, new = pgoff_orig - vma.vm_pgoff, vma_offset(vma)
    if not old and not new:
        return
    ident = _ctx_id(k.state, vma.mm)
    if not new:
        find_and_unmap_existing(k, ident, vma.vm_pgoff, vma.pages, old)
        return
    if is_remap and find_and_remap_existing(k, ident, vma.vm_pgoff, vma.pages, old, new):
        return
    add_new_remap(k, ident, vma.vm_pgoff, vma.pages, new)


def cow_context_do_remap(
    k: Kernel, vma: VMA, orig_addr: int, unfinished: Unfinished | None = None
) -> None:
    """Models mm/cow_context.c:cow_context_do_remap(): copy_vma()'s new VMA
    (not merged) and __split_vma()'s new piece, against the address the
    VMA started at before (`orig_addr`)."""
    if unfinished is not None:
        k.unfinished(
            "cow_context_do_remap", f"vma#{vma.id}: remap against {orig_addr:#x}", unfinished
        )
    __cow_context_do_remap(k, vma, orig_addr >> PAGE_SHIFT, is_remap=True)


def cow_context_do_fork(k: Kernel, vma: VMA) -> None:
    """Models mm/cow_context.c:cow_context_do_fork(): the child's copy of a
    VMA off its home records its offset in the child's remap_mt (the parent's
    private-file half, cow_context_do_map_private_cow(), has nothing here)."""
    k.unfinished(
        "cow_context_do_fork",
        f"vma#{vma.id}: offset {vma_offset(vma)}"
        + (
            " recorded in the child's remap_mt"
            if should_track_remap(vma)
            else ", nothing to record"
        ),
        FORK_UNDO,
    )
    __cow_context_do_remap(k, vma, vma.vm_start >> PAGE_SHIFT, is_remap=False)


# --- the rmap walk ---------------------------------------------------------------


class ContextVisit(NamedTuple):
    """What walk_context() did at one context: skipped (its mm gone), the
    offsets it tried in order (0 first), the VMAs it called rmap_one on,
    and whether the exclusive early return ended the walk here."""

    context: int
    exited: bool
    offsets: tuple[int, ...]
    vmas: tuple[int, ...]
    early_stop: bool = False


class CowWalk(NamedTuple):
    """cow_context_walk() of one folio: each context visited, in order, and
    `missed`: the VMAs the walk would also reach had the exclusive early
    return not ended it (WALK_EXCLUSIVE_STOP), sorted."""

    contexts: tuple[ContextVisit, ...]
    missed: tuple[int, ...] = ()

    @property
    def found(self) -> frozenset[int]:
        """The VMAs rmap_one is called on."""
        return frozenset(v for visit in self.contexts for v in visit.vmas)

    @property
    def vmas(self) -> int:
        """How many rmap_one calls the walk makes."""
        return sum(len(visit.vmas) for visit in self.contexts)

    @property
    def offsets(self) -> int:
        """How many offsets it tries: one VMA-tree range lookup each."""
        return sum(len(visit.offsets) for visit in self.contexts)


def cow_context_walk(state: State, folio: Folio, find_missed: bool = True) -> CowWalk:
    """Models mm/cow_context.c:cow_context_walk(), as coded: traverse_contexts()
    from the folio's context with walk_context() at each.

    When the exclusive early return ended it, the walk is run again as if
    the folio were shared, and what that one alone reaches is `missed`: a
    folio exclusive to a mapping elsewhere than its own context's offset 0
    (moved, or left to a child by a parent's unmap or exit); not looked for
    without `find_missed`."""
    walk = _traverse(state, folio, stop_exclusive=True)
    if not find_missed or not any(visit.early_stop for visit in walk):
        return CowWalk(walk)
    found = {v for visit in walk for v in visit.vmas}
    full = _traverse(state, folio, stop_exclusive=False)
    missed = sorted({v for visit in full for v in visit.vmas} - found)
    return CowWalk(walk, tuple(missed))


def _traverse(state: State, folio: Folio, stop_exclusive: bool) -> tuple[ContextVisit, ...]:
    """Models mm/cow_context.c:traverse_contexts(): the root (the folio's
    context) first, then its descendants depth first, each after its
    children (post-order), ending on the return to the root or at the first
    walk_context() that returns false. Ancestors and siblings of the
    folio's context are never visited."""
    contexts = state.cow_contexts
    root = contexts.get(folio.mapping) if folio.mapping is not None else None
    if root is None:
        return ()
    visits: list[ContextVisit] = []

    def visit(ctx: CowContext) -> bool:
        result, found = walk_context(state, ctx, folio, stop_exclusive)
        visits.append(found)
        return result

    if not visit(root):
        return tuple(visits)
    curr, parent = root, None
    while True:
        if parent is None or curr.id != parent.id:
            child = contexts.get(curr.children[0]) if curr.children else None
            if child is not None:
                curr = child
                continue
        if curr.id == root.id or not visit(curr):
            break
        assert curr.parent is not None
        parent = contexts[curr.parent]
        siblings = parent.children
        i = siblings.index(curr.id)
        curr = contexts[siblings[i + 1]] if i + 1 < len(siblings) else parent
    return tuple(visits)


def walk_context(
    state: State, ctx: CowContext, folio: Folio, stop_exclusive: bool = True
) -> tuple[bool, ContextVisit]:
    """Models mm/cow_context.c:walk_context(): skip a context whose mm is
    gone; try offset 0; an exclusive folio (not folio_maybe_mapped_shared)
    ends the whole walk there; else try each distinct offset the remap_mt
    records for the folio's pgoffs, ascending (as unsigned longs). Returns
    (go on, the visit); `stop_exclusive` False walks on as for a shared one."""
    if ctx.mm is None or ctx.mm not in state.processes:
        return True, ContextVisit(ctx.id, True, (), ())
    vmas = list(walk_context_remap(state, ctx, folio, 0))
    if stop_exclusive and not folio.maybe_mapped_shared():
        return False, ContextVisit(ctx.id, False, (0,), tuple(vmas), True)
    offsets = _unique_offsets(ctx, folio)
    for offset in offsets:
        vmas += walk_context_remap(state, ctx, folio, offset)
    return True, ContextVisit(ctx.id, False, (0, *offsets), tuple(vmas))


def _unique_offsets(ctx: CowContext, folio: Folio) -> tuple[int, ...]:
    """The distinct offsets recorded for the folio's pgoffs, in the order
    walk_context() collects them (append_remap_offset into a sorted array)."""
    unique: tuple[int, ...] = ()
    for r in _overlapping(ctx.remaps, folio.index, folio.index + folio.nr_pages - 1):
        for offset in r.offsets:
            unique = _append_value(unique, offset)
    return unique


def walk_context_remap(state: State, ctx: CowContext, folio: Folio, offset: int) -> list[int]:
    """Models mm/cow_context.c:walk_context_remap(): the VMAs of the
    context's mm over the addresses the folio's pgoffs have at `offset`,
    keeping those whose own offset is `offset` (rmap_one is called on each)."""
    assert ctx.mm is not None
    start = (folio.index + offset) << PAGE_SHIFT
    end = (folio.index + offset + folio.nr_pages) << PAGE_SHIFT
    found = []
    for v in state.processes[ctx.mm].vmas:
        vma = state.vmas[v]
        if vma.vm_start >= end:
            break
        if vma.vm_end > start and vma_offset(vma) == offset:
            found.append(vma.id)
    return found


def offset_recorded(state: State, vma: VMA, folio: Folio) -> bool:
    """Models the remap half of mm/cow_context.c:cow_context_verify_vma():
    is the VMA's offset recorded in its mm's context for the folio's pgoffs?"""
    ctx = state.cow_contexts.get(state.processes[vma.mm].cow_context or 0)
    last = folio.index + folio.nr_pages - 1
    offset = vma_offset(vma)
    return ctx is not None and any(
        offset in r.offsets for r in _overlapping(ctx.remaps, folio.index, last)
    )


def remap_vmas(state: State, ctx: CowContext, entry: RemapRange, offset: int) -> list[VMA]:
    """The VMAs of the context's mm that map the entry's pgoffs at `offset`:
    what walk_context_remap() trying that offset can find (none: the offset
    is stale)."""
    mm = state.processes.get(ctx.mm) if ctx.mm is not None else None
    return [
        vma
        for vma in (state.vmas[v] for v in (mm.vmas if mm is not None else ()))
        if vma_offset(vma) == offset
        and vma.vm_pgoff <= entry.last
        and vma.vm_pgoff + vma.pages - 1 >= entry.first
    ]


def walk_address(vma: VMA, folio: Folio) -> int:
    """Where rmap_one is called in `vma`: max(vm_start, range_start)."""
    return max(vma.vm_start, (folio.index + vma_offset(vma)) << PAGE_SHIFT)


def walk_skeleton(state: State) -> tuple[object, ...]:
    """What of the contexts a walk reads (everything but the refcounts): two
    states with equal skeletons walk alike (engine.invariants.Checker)."""
    return tuple(
        (c.id, c.mm, c.parent, c.children, c.remaps)
        for c in sorted(state.cow_contexts.values(), key=lambda c: c.id)
    )
