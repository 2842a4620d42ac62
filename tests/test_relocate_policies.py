"""Each injected failure of the RELOCATE_ANON walk, under each policy.

The posted code, its changelog and its review disagree on what a pinned
folio, a racing GUP-fast pin, a swap or migration entry and a large folio
straddling the range should do. Each test runs one injection under every
policy (engine.sim.policy.POLICIES) and asserts what each leaves behind: where
the VMAs end up and whether an rmap walk can still find every mapping
(engine.invariants). Pages are columns, as in tools/testing/vma.
"""

from __future__ import annotations

import pytest

from engine.invariants import check, lock_order
from engine.sim.policy import POLICIES
from engine.sim.simulation import Run, run_source
from engine.sim.trace import LockKind

CARVEOUT = "char *c = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
PAGE = 4096


def faulted(name: str, page: int, pages: int = 5) -> str:
    """A faulted 5-page VMA at carveout page `page`."""
    return (
        f"char *{name} = mmap(&c[{page} * page_size], {pages} * page_size, PROT_READ | PROT_WRITE,"
        " MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
        f"memset({name}, 'x', {pages} * page_size);\n"
    )


def relocate(src: str, dst: str) -> str:
    return (
        f"{src} = mremap({src}, 5 * page_size, 5 * page_size,"
        f" MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, {dst});\n"
    )


def rmap_misses(run: Run) -> list[str]:
    """The rmap violations left in the final state (none may be hidden by a lock)."""
    last = run.steps[-1]
    return [v.message for v in check(last.state, last.held) if v.kind == "rmap"]


def vma_extents(run: Run) -> list[tuple[int, int]]:
    """The final writable VMAs of main as (first page, pages) in carveout pages."""
    state = run.steps[-1].state
    base = min(v.vm_start for v in state.mm_vmas("main"))
    return [
        ((v.vm_start - base) // PAGE, (v.vm_end - v.vm_start) // PAGE)
        for v in state.mm_vmas("main")
        if v.vm_flags & 0x2
    ]


# 0123456789012345678901234
#  AAAAA              BBBBB    B's page 2 pinned, B moved next to A
#  AAAAABBBBB                  merged when B is relocated
PINNED = CARVEOUT + faulted("a", 1) + faulted("b", 20) + "pin(b + 2 * page_size, page_size);\n"
PINNED += relocate("b", "&a[5 * page_size]")


@pytest.mark.parametrize(
    ("policy", "extents", "misses"),
    [
        # skipped yet counted a success: merged, and the pinned folio is lost to rmap
        ("posted", [(1, 10)], 1),
        # the changelog: abort, undo, plain move: B keeps its own anon_vma
        ("pinned_aborts", [(1, 5), (6, 5)], 0),
        ("isolate", [(1, 5), (6, 5)], 0),
        # relocated part merges with A; the rest is moved plainly
        ("split", [(1, 7), (8, 3)], 0),
        # pins are not checked: everything moves and merges
        ("no_pin_check", [(1, 10)], 0),
    ],
)
def test_pinned_folio(policy: str, extents: list[tuple[int, int]], misses: int) -> None:
    run = run_source(PINNED, policy=policy)
    assert run.statements[-1].outcome.result.result == "ok"
    assert vma_extents(run) == extents
    assert len(rmap_misses(run)) == misses


# 0123456789012345678901234
#  AAAAA              BBBBB    B's page 3 pinned; a GUP-fast pin will land on
#                              page 0 after the walk relocated it
#  AAAAA     BBBBB             B moved to page 10 (no neighbour to merge)
UNDO_RACE = CARVEOUT + faulted("a", 1) + faulted("b", 20)
UNDO_RACE += "pin(b + 3 * page_size, page_size);\ngup_fast_pin(b, 2);\n"
UNDO_RACE += relocate("b", "&c[10 * page_size]")


@pytest.mark.parametrize(
    ("policy", "misses"),
    [
        ("posted", 1),  # page 3 skipped as a success: keeps the freed old anon_vma
        ("pinned_aborts", 1),  # the undo skips the now-pinned page 0: the review's race
        ("isolate", 0),  # the undo reverts what it relocated, pinned or not
        ("split", 0),  # nothing to undo: pages 0-2 stay relocated, 3-4 move plainly
        ("no_pin_check", 0),
    ],
)
def test_gup_fast_race_during_undo(policy: str, misses: int) -> None:
    run = run_source(UNDO_RACE, policy=policy)
    assert run.statements[-1].outcome.result.result == "ok"
    assert len(rmap_misses(run)) == misses
    moved = [e for e in vma_extents(run) if e[0] >= 10]
    assert sum(pages for _, pages in moved) == 5


def test_undo_race_names_the_freed_anon_vma() -> None:
    run = run_source(UNDO_RACE, policy="pinned_aborts")
    (miss,) = rmap_misses(run)
    assert "is freed" in miss
    undo = [s for s in run.steps if s.summary.startswith("undo:")]
    assert any("pinned" in e.decision for s in undo for e in s.events)


# A pin that lands before the walk reaches the page is the same as a pin held
# before the call: each policy treats it as it treats test_pinned_folio.
BEFORE_WALK = CARVEOUT + faulted("a", 1) + faulted("b", 20)
BEFORE_WALK += "gup_fast_pin(b + 2 * page_size, 1);\n" + relocate("b", "&a[5 * page_size]")


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_race_before_walk_matches_a_held_pin(policy: str) -> None:
    raced = run_source(BEFORE_WALK, policy=policy)
    held = run_source(PINNED, policy=policy)
    assert vma_extents(raced) == vma_extents(held)
    assert len(rmap_misses(raced)) == len(rmap_misses(held))


# 0123456789012345678901234
#  AAAAA              BsBBB    page 1 of B swapped out, then B relocated
#  AAAAABsBBB                  merged; the swap entry was skipped
def test_swap_entry_is_skipped_and_comes_back_linear() -> None:
    src = CARVEOUT + faulted("a", 1) + faulted("b", 20)
    src += "swapout(b + page_size, page_size);\n" + relocate("b", "&a[5 * page_size]")
    run = run_source(src)
    assert vma_extents(run) == [(1, 10)]
    assert rmap_misses(run) == []
    skipped = [e for s in run.steps for e in s.events if "swap entry" in e.decision]
    assert skipped, "the walk says it skipped the swap entry"
    # swapping back in gives a new folio with the VMA's anon_vma and index
    run = run_source(src + "b[page_size] = 1;\n")
    assert rmap_misses(run) == []


# 0123456789012345678901234
#  AAAAA              BmBBB    page 1 of B mid-migration (a migration entry)
#  AAAAABmBBB                  merged; the migration entry's folio was skipped
def test_migration_entry_is_skipped_and_lost_to_rmap() -> None:
    src = CARVEOUT + faulted("a", 1) + faulted("b", 20)
    src += "migrate_entry(b + page_size, page_size);\n" + relocate("b", "&a[5 * page_size]")
    run = run_source(src)
    assert vma_extents(run) == [(1, 10)]
    (miss,) = rmap_misses(run)
    assert "is freed" in miss  # remove_migration_ptes() would walk a freed anon_vma


THP = """char *area = mmap(NULL, 8 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *thp = mmap(area + (2 << 20), 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(thp, 2 << 20, MADV_HUGEPAGE);
thp[0] = 'h';
"""
# mprotect one page and back: the VMA is whole again, the THP is PTE-mapped.
PTE_MAPPED = THP + (
    "mprotect(thp + (1 << 20), page_size, PROT_READ);\n"
    "mprotect(thp + (1 << 20), page_size, PROT_READ | PROT_WRITE);\n"
)


def test_pmd_thp_fully_spanned_moves_whole() -> None:
    src = (
        THP
        + "char *m = mremap(thp, 2 << 20, 2 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (4 << 20));\n"
    )
    run = run_source(src)
    assert any("relocated whole" in s.summary for s in run.steps)
    assert rmap_misses(run) == []


def test_pte_mapped_large_folio_straddling_the_end_is_split() -> None:
    src = (
        PTE_MAPPED
        + "char *m = mremap(thp, 1 << 20, 1 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (5 << 20));\n"
    )
    run = run_source(src)
    assert any(s.function == "mm/huge_memory.c:split_folio" for s in run.steps)
    assert not any("undo" in s.summary for s in run.steps)
    assert rmap_misses(run) == []


def test_straddling_folio_sharing_our_anon_vma_root_fails_and_falls_back() -> None:
    # moved right after its own VMA: __anon_vma_prepare reuses that anon_vma,
    # so split_folio() would take the lock the walk holds
    src = (
        PTE_MAPPED
        + "char *m = mremap(thp, 1 << 20, 1 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, thp + (2 << 20));\n"
    )
    run = run_source(src)
    decisions = [e.decision for s in run.steps for e in s.events]
    assert any("would deadlock" in d for d in decisions)
    assert any("falls back to a plain move" in d for d in decisions)
    assert rmap_misses(run) == []


def test_must_fails_where_relocate_falls_back() -> None:
    src = (
        PTE_MAPPED
        + "char *m = mremap(thp, 1 << 20, 1 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON, thp + (2 << 20));\n"
    )
    run = run_source(src)
    assert run.statements[-1].outcome.result.result == "EFAULT"
    assert rmap_misses(run) == []


def test_walk_flags_sleeping_under_the_pte_lock() -> None:
    """relocate_anon_pte(): folio_lock(folio) under the PTE lock taken by
    pte_offset_map_lock() in relocate_anon_ptes(): the syzkaller report."""
    run = run_source(
        CARVEOUT + faulted("a", 1) + faulted("b", 20) + relocate("b", "&a[5 * page_size]")
    )
    walk = [s for s in run.steps if s.function == "mm/mremap.c:relocate_anon_pte"]
    assert len(walk) == 5  # a small range: one step per folio
    for step in walk:
        assert any(lock.kind is LockKind.PTE_LOCK for lock in step.locks)
        assert any(lock.kind is LockKind.FOLIO_LOCK for lock in step.locks)
        messages = [v.message for v in lock_order(step.acquired)]
        assert any("may sleep, taken under pte_lock (spinlock)" in m for m in messages)
