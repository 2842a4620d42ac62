"""The COW-context rmap model (engine.cow_context) beside anon_vma: where
the two models differ, each model's result; the remap tree as the branch
codes it; the rmap check under both models over the whole gallery.

The proposal is read at commit a4ac1966 of the branch project/cow-context;
diagrams are one column per page, as in review mail.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from engine.accounting import (
    COW_CONTEXT_BYTES,
    VM_AREA_STRUCT_BYTES,
    WalkCost,
    kmalloc_size,
    maple_nodes,
    metadata,
)
from engine.cow_context import (
    DUP_ANON_VMA_STUB,
    FORK_NOT_LINKED,
    SPLIT_REMAP,
    WALK_EXCLUSIVE_STOP,
    add_new_remap,
    cow_context_walk,
    find_and_remap_existing,
    find_and_unmap_existing,
    vma_offset,
)
from engine.gallery import GalleryEntry, find, gallery
from engine.invariants import RmapMiss, check, rmap_check
from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import RMAP_MODELS, RemapRange, RmapModel, State
from engine.pagetable import PRESENT
from engine.rmap import rmap_walk_anon
from engine.sim.kernel import Kernel
from engine.sim.simulation import Run, run_source
from engine.variants import apply
from tests.support.cli import cli

RW = "PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS"


def final(run: Run) -> State:
    assert run.error is None, run.error
    return run.steps[-1].state


def after(run: Run, line: int) -> State:
    """The state after the statement on `line`."""
    st = next(s for s in run.statements if s.outcome.statement.line == line)
    return run.steps[st.last - 1].state


def results(run: Run) -> list[str]:
    return [s.outcome.result.result for s in run.statements]


def rw_vmas(state: State, mm: str = "main") -> list[tuple[int, int]]:
    """(pages, offset) of each writable VMA of `mm`, in address order."""
    return [(v.pages, vma_offset(v)) for v in state.mm_vmas(mm) if v.vm_flags & 0x2]


def mapped(state: State, mm: str) -> list[tuple[int, int, int]]:
    """(vma id, address, folio id) of each anonymous page `mm` maps."""
    out = []
    for vma in state.mm_vmas(mm):
        table = state.processes[mm].pagetable
        for vpn, pte in table.items(vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT):
            if pte.kind == PRESENT and pte.folio in state.folios:
                out.append((vma.id, vpn << PAGE_SHIFT, pte.folio))
    return out


# --- a faulted VMA moved away and back -----------------------------------------


def test_move_away_and_back_records_an_offset_and_rewrites_no_folio() -> None:
    # 0         1         2         3
    # 0123456789012345678901234567890123456789
    #  pppppppppp                               10 pages written
    #  pppp..pppp              qq               2 moved 20 pages up (line 10)
    #  pppppppppp                               and back (line 12)
    source = find("move_away_and_back").source
    anon, cow = (run_source(source, rmap_model=m) for m in RMAP_MODELS)
    away_anon, away_cow = after(anon, 10), after(cow, 10)
    # Both models: the pgoff rule stands, the piece keeps its pgoff, 3 pieces.
    assert rw_vmas(away_anon) == rw_vmas(away_cow) == [(4, 0), (4, 0), (2, 20)]
    # anon_vma: one anon_vma for all three, the piece chained to it.
    assert len(away_anon.anon_vmas) == 1 and not away_anon.cow_contexts
    # cow_context: no anon_vma; offset 20 recorded for the piece's two pgoffs,
    # and not one folio rewritten (same index and context as before the move).
    (ctx,) = away_cow.cow_contexts.values()
    assert not away_cow.anon_vmas
    piece = away_cow.mm_vmas("main")[-2]
    assert ctx.remaps == (RemapRange(piece.vm_pgoff, piece.vm_pgoff + 1, (20,)),)
    before = after(cow, 9)
    assert {f.id: (f.mapping, f.index) for f in away_cow.folios.values()} == {
        f.id: (f.mapping, f.index) for f in before.folios.values()
    }
    # Back home, both merge into one VMA again.
    assert rw_vmas(final(anon)) == rw_vmas(final(cow)) == [(10, 0)]
    # The source's unmap ran unlink_anon_vmas() before remove_vma(): its
    # offset stays recorded, stale (no VMA maps at offset 20 any more).
    assert metadata(final(cow)).stale_remap_offsets == 1
    assert metadata(final(anon)).stale_remap_offsets == 0


def test_moved_exclusive_folio_is_missed_by_the_walk_as_coded() -> None:
    # 0         1         2
    # 0123456789012345678901234567
    #  pppp..pppp              qq   q's folios: exclusive, offset 20
    #  ....  ....              uu   . found, u: missed (unfinished)
    source = find("move_away_and_back").source
    anon, cow = (after(run_source(source, rmap_model=m), 10) for m in RMAP_MODELS)
    assert check(anon) == []
    missed = [v for v in check(cow) if v.kind == "rmap"]
    assert len(missed) == 2
    assert all(v.unfinished == WALK_EXCLUSIVE_STOP for v in missed)
    assert "TODO: Races?" in (WALK_EXCLUSIVE_STOP.comment or "")
    vma, addr, folio_id = mapped(cow, "main")[-1]
    folio = cow.folios[folio_id]
    walk = cow_context_walk(cow, folio)
    # Offset 0 of the folio's own context, then the exclusive early stop:
    # the recorded offset 20 that reaches the moved VMA is never tried.
    assert [(c.offsets, c.early_stop) for c in walk.contexts] == [((0,), True)]
    assert walk.found == frozenset() and walk.missed == (vma,)
    check_one = rmap_check(cow, cow.vmas[vma], addr, 0, folio)
    assert check_one.miss is RmapMiss.EXCLUSIVE_EARLY_STOP


# --- fork, then mremap in the child ------------------------------------------


def test_fork_then_mremap_in_the_child() -> None:
    # 0         1         2         3
    # 0123456789012345678901234567890123
    #  pppp                                main: 4 pages written
    #  ppppnn                              child: fresh nn after its copy
    #  ....nn              qqqq            child: pppp moved 19 pages up
    #                       c              child writes one page (COW)
    source = find("cow_fork_then_mremap").source
    anon, cow = (run_source(source, rmap_model=m) for m in RMAP_MODELS)
    # The fresh neighbour: 6.18 refuses it (case 2, a fork child), the
    # proposal merges it (is_mergeable_anon_vma() always true).
    assert rw_vmas(after(anon, 16), "child") == [(4, 0), (2, 0)]
    assert rw_vmas(after(cow, 16), "child") == [(6, 0)]
    state = final(cow)
    main_ctx = state.processes["main"].cow_context
    child_ctx = state.processes["child"].cow_context
    assert state.cow_contexts[child_ctx].parent == main_ctx
    assert state.cow_contexts[main_ctx].children == (child_ctx,)
    # The move is recorded in the child's remap tree only.
    assert state.cow_contexts[main_ctx].remaps == ()
    assert [r.offsets for r in state.cow_contexts[child_ctx].remaps] == [(19,)]
    moved = [v for v in state.mm_vmas("child") if vma_offset(v) == 19][0]
    shared = [
        state.folios[f]
        for v, _, f in mapped(state, "child")
        if v == moved.id and state.folios[f].mapping == main_ctx
    ]
    assert len(shared) == 3
    # A shared folio: main's context (offset 0: main's VMA), then the child's
    # (offset 0: nothing; offset 19: the moved VMA).
    walk = cow_context_walk(state, shared[0])
    assert [(c.context, c.offsets) for c in walk.contexts] == [
        (main_ctx, (0,)),
        (child_ctx, (0, 19)),
    ]
    assert walk.found == {state.mm_vmas("main")[1].id, moved.id}
    # The page the child wrote is a new folio in the child's context,
    # exclusive: as coded, its walk stops before offset 19.
    cowed = [v for v in check(state) if v.kind == "rmap" and v.unfinished == WALK_EXCLUSIVE_STOP]
    assert len(cowed) == 1
    assert check(final(anon)) == []


def test_forked_child_is_unreachable_until_dup_cow_context() -> None:
    """dup_mmap() copies the page tables in its loop and links the child's
    context after it: a racing walk misses the child meanwhile."""
    run = run_source(find("fork_and_cow").source, rmap_model="cow_context")
    copied = [s for s in run.steps if s.function == "mm/mmap.c:dup_mmap"][-1]
    assert {v.unfinished for v in check(copied.state)} == {FORK_NOT_LINKED}
    linked = next(s for s in run.steps if s.function == "mm/cow_context.c:dup_cow_context")
    assert check(linked.state) == []


def test_unfaulted_target_taking_in_a_faulted_range_loses_it_on_the_next_move() -> None:
    # 0         1         2         3
    # 0123456789012345678901234567890123456789
    #      ffff                                  faulted
    #                     ffff                   moved away (offset 15)
    #  uuuu               ffff                   fresh, unfaulted, before f's home
    #  uuuuffff                                  f back home: merged into u
    #                               uuuuffff     the merged VMA moved on
    source = find("cow_unfaulted_absorbs_faulted").source
    anon, cow = (run_source(source, rmap_model=m) for m in RMAP_MODELS)
    merged_anon, merged_cow = after(anon, 17), after(cow, 17)
    assert rw_vmas(merged_anon) == rw_vmas(merged_cow) == [(8, 0)]
    # 6.18: dup_anon_vma() gave u f's anon_vma; the stub leaves it NULL.
    assert merged_anon.mm_vmas("main")[1].anon_vma is not None
    assert merged_cow.mm_vmas("main")[1].anon_vma is None
    stub = [e for st in cow.steps for e in st.events if e.unfinished == DUP_ANON_VMA_STUB]
    assert stub and stub[0].function == "dup_anon_vma"
    # The next move keeps the pgoff under 6.18 and re-bases it under the
    # proposal (copy_vma() sees an unfaulted VMA): the folios are lost.
    assert rw_vmas(final(anon)) == [(8, 29)] and check(final(anon)) == []
    assert rw_vmas(final(cow)) == [(8, 0)]
    lost = check(final(cow))
    assert lost and {v.unfinished for v in lost} == {DUP_ANON_VMA_STUB}
    vma, addr, folio = mapped(final(cow), "main")[0]
    check_one = rmap_check(final(cow), final(cow).vmas[vma], addr, 0, final(cow).folios[folio])
    assert check_one.miss is RmapMiss.UNFAULTED_MAPS_FOLIOS and not check_one.index_matches


# --- a deep fork chain with exits ----------------------------------------------


def test_deep_fork_chain_with_exits() -> None:
    # main -> b -> c -> d; b exits before c forks d; then d and c exit.
    source = find("cow_fork_chain_exits").source
    anon, cow = (run_source(source, rmap_model=m) for m in RMAP_MODELS)
    assert results(anon) == results(cow) == ["ok"] * 10
    # anon_vma: d reuses the anon_vma b left orphaned (no VMA, one child).
    forked_d = after(anon, 16)
    b_anon_vma = after(anon, 14).mm_vmas("b")[0].anon_vma
    assert forked_d.mm_vmas("d")[0].anon_vma == b_anon_vma
    assert len(forked_d.anon_vmas) == 3
    # cow_context: b's context outlives b (mm NULL), held by c and b's folio.
    state = after(cow, 16)
    ctx = {name: mm.cow_context for name, mm in state.processes.items()}
    b_ctx = state.cow_contexts[ctx["c"]].parent
    assert b_ctx is not None and state.cow_contexts[b_ctx].mm is None
    b_folios = sum(f.mapping == b_ctx for f in state.folios.values())
    assert state.cow_contexts[b_ctx].refcnt == 1 + b_folios == 2
    # A walk of main's folio: main first, then the descendants in post-order
    # (d, c, then b, skipped: its mm is gone).
    folio = next(f for f in state.folios.values() if f.mapping == ctx["main"])
    walk = cow_context_walk(state, folio)
    assert [(c.context, c.exited) for c in walk.contexts] == [
        (ctx["main"], False),
        (ctx["d"], False),
        (ctx["c"], False),
        (b_ctx, True),
    ]
    # When d and c are gone the put cascade frees d's, c's and b's contexts.
    end = final(cow)
    assert list(end.cow_contexts) == [ctx["main"]]
    assert end.cow_contexts[ctx["main"]].children == ()
    assert len(final(anon).anon_vmas) == 1


def test_a_fork_after_an_exit_gets_a_pid_no_process_had() -> None:
    """alloc_pid() counts up: d, forked after b exited, does not get c's pid."""
    run = run_source(find("cow_fork_chain_exits").source)
    pids = {mm.name: mm.pid for s in run.steps for mm in s.state.processes.values()}
    assert len(set(pids.values())) == len(pids) == 4


def test_exited_process_makes_no_more_calls() -> None:
    source = f"char *p = mmap(NULL, 4096, {RW}, -1, 0);\nexit(0);\np[0] = 'x';\n"
    for model in RMAP_MODELS:
        run = run_source(source, rmap_model=model)
        assert results(run) == ["ok", "ok", "ESRCH"]
        assert "main" not in final(run).processes


# --- MREMAP_RELOCATE_ANON under each model ---------------------------------------


def test_relocate_flag_is_einval_under_the_proposal() -> None:
    source = find("cow_relocate_flag").source
    anon, cow = (run_source(source, rmap_model=m) for m in RMAP_MODELS)
    # anon_vma runs the series: relocated and merged, so the second move
    # finds nothing left at ptr2; the branch has no such flag.
    assert results(anon)[-2:] == ["ok", "EFAULT"]
    assert results(cow)[-2:] == ["EINVAL", "ok"]
    assert rw_vmas(final(anon)) == [(10, 0)]
    assert rw_vmas(final(cow)) == [(5, 0), (5, -14)]
    (ctx,) = final(cow).cow_contexts.values()
    assert [r.offsets for r in ctx.remaps] == [(-14,)]


# --- the remap tree as coded ------------------------------------------------------


def remap_kernel() -> tuple[Kernel, int]:
    k = Kernel(rmap_model="cow_context")
    ident = k.state.processes["main"].cow_context
    assert ident is not None
    return k, ident


def test_add_new_remap_splits_straddling_entries_and_fills_gaps() -> None:
    # pgoff 0123456789
    #       ..AAAA....    offset 5 at 2-5
    #       ....BBBB..    offset 7 at 4-7: 2-3 {5}, 4-5 {5,7}, 6-7 {7}
    k, ident = remap_kernel()
    add_new_remap(k, ident, 2, 4, 5)
    add_new_remap(k, ident, 4, 4, 7)
    assert k.cow_context(ident).remaps == (
        RemapRange(2, 3, (5,)),
        RemapRange(4, 5, (5, 7), 2),
        RemapRange(6, 7, (7,)),
    )
    # find_and_unmap_existing removes an offset from each entry it overlaps,
    # over the entry's whole range: two offsets become a simple entry.
    find_and_unmap_existing(k, ident, 5, 1, 5)
    assert k.cow_context(ident).remaps == (
        RemapRange(2, 3, (5,)),
        RemapRange(4, 5, (7,)),
        RemapRange(6, 7, (7,)),
    )
    assert find_and_remap_existing(k, ident, 6, 2, 7, 9)
    assert not find_and_remap_existing(k, ident, 6, 2, 7, 9)
    assert k.cow_context(ident).remaps[-1] == RemapRange(6, 7, (9,))


def test_remap_offsets_sort_as_unsigned_and_a_duplicate_still_allocates() -> None:
    k, ident = remap_kernel()
    add_new_remap(k, ident, 0, 1, 3)
    add_new_remap(k, ident, 0, 1, -2)
    add_new_remap(k, ident, 0, 1, 1)
    # The dynarray compares raw unsigned longs: -2 sorts after 3.
    assert k.cow_context(ident).remaps == (RemapRange(0, 0, (1, 3, -2), 4),)
    k2, ident2 = remap_kernel()
    add_new_remap(k2, ident2, 0, 1, 3)
    add_new_remap(k2, ident2, 0, 1, 3)
    # A simple entry goes through a stack array that must grow: stored as an
    # allocated array of one offset (capacity 2), not left simple.
    assert k2.cow_context(ident2).remaps == (RemapRange(0, 0, (3,), 2),)


def test_split_remap_is_marked_unfinished() -> None:
    source = f"char *p = mmap(NULL, 8 * 4096, {RW}, -1, 0);\nmemset(p, 1, 8 * 4096);\n"
    source += "munmap(p + 2 * 4096, 4096);\n"
    run = run_source(source, rmap_model="cow_context")
    marks = [e.unfinished for s in run.steps for e in s.events if e.unfinished]
    assert SPLIT_REMAP in marks


# --- counts and memory ---------------------------------------------------------------


def test_counts_and_bytes_per_model() -> None:
    # 0         1         2
    # 012345678901234567890123456
    #  aaa      bbb       ccc        three faulted VMAs
    #  aaabbbccc                     moved side by side
    #                aaabbbccc       and away together: 3 VMAs either way
    source = find("cow_fragmentation").source
    anon, cow = (metadata(final(run_source(source, rmap_model=m))) for m in RMAP_MODELS)
    assert (anon.vmas, anon.anon_vmas, anon.anon_vma_chains) == (cow.vmas, 3, 3) == (6, 3, 3)
    # One remap entry per piece; b's and c's rewritten in place by the second move.
    assert (cow.anon_vmas, cow.cow_contexts, cow.remap_entries, cow.remap_offsets) == (0, 1, 3, 3)
    assert (cow.stale_remap_offsets, cow.maple_nodes) == (0, 1)
    assert cow.bytes == 6 * VM_AREA_STRUCT_BYTES + COW_CONTEXT_BYTES + 256 < anon.bytes
    assert "mm_types.h@1be9d553" in cow.sizes_source
    # Every folio is exclusive and moved: the walk as coded tries offset 0
    # of its context and stops, reaching no VMA; anon_vma finds each once.
    assert cow.walks == (((0, 1, 1), 9),)
    assert anon.walks == (((1, 0, 1), 9),)


def test_walk_counts_are_the_walks() -> None:
    """The anon_vma counts, taken without building each walk, agree with
    rmap_walk_anon(); the cow_context ones are cow_context_walk()'s."""
    for entry in gallery():
        for model in RMAP_MODELS:
            state = final(run_source(entry.source, rmap_model=model))
            expected: Counter[WalkCost] = Counter()
            for folio in state.folios.values():
                if folio.shmem is not None:
                    continue
                if model == "anon_vma":
                    objects = int(folio.mapping in state.anon_vmas)
                    cost = WalkCost(len(rmap_walk_anon(state, folio)), 0, objects)
                else:
                    walk = cow_context_walk(state, folio)
                    cost = WalkCost(walk.vmas, walk.offsets, len(walk.contexts))
                expected[cost] += 1
            assert metadata(state).walks == tuple(sorted(expected.items())), entry.slug


def test_sizes_as_computed() -> None:
    assert [kmalloc_size(8 + 8 * cap) for cap in (2, 4, 8, 16)] == [32, 64, 96, 192]
    assert maple_nodes([]) == 0
    assert maple_nodes([(4, 5)]) == 1  # gap, range, gap: 3 slots
    # 17 slots: two leaves and the node above them.
    assert maple_nodes([(2 * i, 2 * i) for i in range(1, 9)]) == 3


# --- the rmap check over the whole gallery, under both models -----------------------


@pytest.mark.parametrize("entry", gallery(), ids=lambda e: e.slug)
def test_rmap_check_holds_under_both_models(entry: GalleryEntry) -> None:
    """Under cow_context every page the walk misses, at every step, is one the
    branch's own TODOs name (the exclusive early stop, the fork link), but
    for the in-place rewrite of a multi-VMA move (the next test); the
    objects (refcounts, the tree, the remap entries) always hold. Under
    anon_vma the scenarios that are not about the series' failures hold."""
    cow = run_source(entry.source, rmap_model="cow_context")
    for step in cow.steps:
        found = check(step.state, step.held, step.acquired)
        unmarked = [v.message for v in found if v.unfinished is None]
        if entry.slug == "cow_fragmentation" and step.function == "mm/vma.c:copy_vma":
            assert all("offset is not recorded" in m for m in unmarked)
        else:
            assert unmarked == [], step.function
    if "relocate" not in entry.slug:
        anon = run_source(entry.source, rmap_model="anon_vma")
        for step in anon.steps:
            assert check(step.state, step.held, step.acquired) == [], step.function


def test_in_place_rewrite_hides_the_source_until_the_ptes_move() -> None:
    """A move whose old offset is recorded has it rewritten in place
    (find_and_remap_existing) by copy_vma(), before move_page_tables(): the
    source VMA still maps the pages, at an offset no entry records, so no
    walk reaches them (what cow_context_verify_vma() checks)."""
    # 0         1         2
    # 012345678901234567890123456
    #  aaabbbccc                     b at offset -6 (moved from 10 to 4)
    #  aaabbbccc     BBB             copy_vma: -6 rewritten to 8, PTEs at 4
    run = run_source(find("cow_fragmentation").source, rmap_model="cow_context")
    copies = [i for i, s in enumerate(run.steps) if s.function == "mm/vma.c:copy_vma"]
    state = run.steps[copies[-2]].state
    source = next(v for v in state.mm_vmas("main") if vma_offset(v) == -6)
    vma, addr, folio = next(m for m in mapped(state, "main") if m[0] == source.id)
    assert rmap_check(state, source, addr, 0, state.folios[folio]).miss is (
        RmapMiss.OFFSET_NOT_RECORDED
    )
    moved = run.steps[copies[-2] + 1]
    assert moved.function == "mm/mremap.c:move_page_tables"
    assert [v for v in check(moved.state) if v.unfinished is None] == []


def test_gallery_shows_the_unfinished_walk_somewhere() -> None:
    """The test above compares something: the proposal's walk does miss."""
    run = run_source(find("cow_fork_chain_exits").source, rmap_model="cow_context")
    marked = {v.unfinished for s in run.steps for v in check(s.state)}
    assert {WALK_EXCLUSIVE_STOP, FORK_NOT_LINKED} <= marked


# --- the run option, the directive, the variants, the CLI -----------------------------


def test_rmap_directive_and_variant() -> None:
    source = find("move_away_and_back").source
    assert final(run_source(source)).rmap_model == "anon_vma"
    assert final(run_source(apply("rmap-cow_context", source))).rmap_model == "cow_context"
    directed = find("cow_fragmentation").source
    assert final(run_source(directed)).rmap_model == "cow_context"
    model: RmapModel = "anon_vma"
    assert final(run_source(directed, rmap_model=model)).rmap_model == "anon_vma"


def test_cli_runs_either_model_and_verify_refuses_the_proposal() -> None:
    done = cli("run", "move_away_and_back", "--rmap-model", "cow_context", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["rmap_model"] == "cow_context"
    last = document["steps"][-1]["metadata"]
    assert (last["cow_contexts"], last["anon_vmas"], last["stale_remap_offsets"]) == (1, 0, 1)
    assert last["rmap_walks"] == [{"vmas": 1, "offsets": 1, "rmap_objects": 1, "folios": 10}]
    unfinished = [
        v["unfinished"]
        for s in document["steps"]
        for st in s["inner"]
        for v in st["violations"]
        if v["unfinished"]
    ]
    assert unfinished and unfinished[0]["where"] == WALK_EXCLUSIVE_STOP.where
    text = cli("run", "move_away_and_back", "--rmap-model", "cow_context")
    assert "not a kernel anyone runs" in text.stdout
    assert "metadata (cow_context): 4 VMAs, 1 cow_contexts" in text.stdout
    chain = cli("run", "cow_fork_chain_exits")
    assert chain.returncode == 0 and "- (exited)" in chain.stdout  # b's context, kept
    refused = cli("verify", "cow_fragmentation")
    assert refused.returncode == 4
    assert "no kernel runs it" in refused.stderr and "a4ac1966" in refused.stderr
    refused = cli("verify", "move_away_and_back", "--rmap-model", "cow_context")
    assert refused.returncode == 4
