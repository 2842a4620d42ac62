"""RELOCATE_ANON as posted (v1, 9 June 2025, patches 01-03): the branches
its review and a reading of the code found, each reached by a scenario.

Each test's docstring names the posted function and line it asserts.
"""

from __future__ import annotations

import pytest

from engine.gallery import find
from engine.invariants import check, lock_order
from engine.sim.policy import POLICIES
from engine.sim.simulation import Run, run_source
from engine.sim.trace import Lock, LockKind

CARVEOUT = "char *c = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"


def gallery_source(slug: str) -> str:
    entry = find(slug)
    assert entry is not None
    return entry.source


def decisions(run: Run) -> list[str]:
    return [e.decision for s in run.steps for e in s.events]


def warnings(run: Run) -> list[str]:
    return [w for s in run.steps for w in s.warnings]


def rmap_misses(run: Run) -> list[str]:
    last = run.steps[-1]
    return [v.message for v in check(last.state, last.held) if v.kind == "rmap"]


def result(run: Run) -> str:
    return run.statements[-1].outcome.result.result


SPLIT_FAILS = gallery_source("relocate_split_fails")


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_split_folio_fails_under_a_racing_gup_fast_pin(policy: str) -> None:
    """relocate_anon_pte(): `err = split_folio(folio);` then
    `if (err || !state->ptep) return 0;`: split_folio() wants no reference
    beyond the mapcount and the caller's folio_get(), and a GUP-fast pin
    landing while the PTE lock is dropped breaks it, under every policy."""
    run = run_source(SPLIT_FAILS, policy=policy)
    assert result(run) == "ok"
    found = decisions(run)
    assert any("refcount 514 != mapcount 512" in d and "-EAGAIN" in d for d in found)
    assert any("`if (err || !state->ptep) return 0;`" in d for d in found)
    assert rmap_misses(run) == []
    if POLICIES[policy].split_on_failure:
        assert not any(s.summary.startswith("undo") for s in run.steps)
    else:
        # the undo re-walks and the move is redone plainly
        assert any(s.summary.startswith("undo") for s in run.steps)
        assert any("falls back to a plain move" in d for d in found)
    if policy in ("posted", "pinned_aborts"):
        # the large folio, pinned now, is passed over by the undo
        assert any(s.summary == "undo: pinned folio skipped" for s in run.steps)


def test_split_failure_under_must_is_efault() -> None:
    """copy_vma_and_data() (patch 02): after the undo,
    `if (vrm->flags & MREMAP_MUST_RELOCATE_ANON) { vrm_uncharge(vrm); ... return -EFAULT; }`."""
    run = run_source(SPLIT_FAILS.replace("MREMAP_RELOCATE_ANON", "MREMAP_MUST_RELOCATE_ANON"))
    assert result(run) == "EFAULT"
    assert any("vrm_uncharge()" in d for d in decisions(run))
    assert rmap_misses(run) == []


def test_split_drops_the_pte_lock_and_takes_the_old_anon_vma() -> None:
    """relocate_anon_pte(): `pte_unmap_unlock(state->ptep, state->ptl);
    err = split_folio(folio);`: the PTE lock is not held across the split,
    which write-locks the folio's (old) anon_vma under the new one's rwsem
    and the folio lock."""
    run = run_source(SPLIT_FAILS)
    (split,) = [s for s in run.steps if s.function == "mm/huge_memory.c:split_folio"]
    anon = LockKind.ANON_VMA_RWSEM
    (nested,) = [(held, lock) for held, lock in split.acquired if lock.kind is anon]
    held, lock = nested
    assert any(h.kind is LockKind.FOLIO_LOCK for h in held)
    assert any(h.kind is anon and h != lock for h in held)
    assert not any(h.kind is LockKind.PTE_LOCK for h in held)


def test_without_the_race_the_split_succeeds() -> None:
    """split_folio() succeeds when the refcount is as expected: the walk
    goes on (`goto retry`) and every folio is relocated."""
    run = run_source(SPLIT_FAILS.replace("gup_fast_pin(buf + 4 * page_size, 3);\n", ""))
    assert any("split into 512 small folios" in d for d in decisions(run))
    assert not any(s.summary.startswith("undo") for s in run.steps)
    assert rmap_misses(run) == []


MISALIGNED = gallery_source("relocate_large_folio_misaligned")


def test_large_folio_met_mid_folio_gets_a_wrong_index_and_skips_ptes() -> None:
    """relocate_anon_pte(): `if (is_thp_fully_spanned(pmc, old_addr, size) &&
    __relocate_large_folio(pmc, old_addr, new_addr, folio, undo))` then
    `ret = folio_nr_pages(folio);`: the index comes from this PTE's address
    and nr_pages PTEs are consumed from it."""
    run = run_source(MISALIGNED)
    assert result(run) == "ok"
    assert any("VM_WARN_ON_ONCE(old_addr & (size - 1))" in w for w in warnings(run))
    assert any("met at its page 256, not its head" in d for d in decisions(run))
    misses = rmap_misses(run)
    wrong_index = [m for m in misses if "!= linear_page_index" in m]
    lost = [m for m in misses if "!= linear_page_index" not in m]
    assert len(wrong_index) == 512  # every page of the large folio
    assert len(lost) == 4  # the small folios past it, never relocated
    # the same moves without the flag leave rmap exact
    plain = run_source(MISALIGNED.replace(" | MREMAP_RELOCATE_ANON", ""))
    assert rmap_misses(plain) == []


def test_pinned_large_folio_is_skipped_one_pte_at_a_time() -> None:
    """relocate_anon_pte(): `if (folio_maybe_dma_pinned(folio)) goto out;`
    with ret = 1: a pinned large folio is passed over PTE by PTE."""
    run = run_source(SPLIT_FAILS.replace(", 3);", ", 1);"))
    skipped = [s for s in run.steps if s.summary == "walk: pinned folio skipped"]
    assert len(skipped) == 1
    assert any("1 per PTE" in e.decision for e in skipped[0].events)


MMAP, FOLIO = Lock.mmap("main", "write"), Lock.folio(1)
ANON, PTE = Lock.anon_vma_write(2), Lock.pte_table(0)
LOCKS = [
    ((), MMAP),
    ((MMAP,), FOLIO),
    (
        (MMAP, FOLIO),
        ANON,
    ),
]


def test_lock_order_passes_the_documented_order() -> None:
    """mm/rmap.c's "Lock ordering in mm": mmap_lock, folio_lock,
    anon_vma->rwsem, pte_lock, as split_folio() takes them."""
    held = (
        MMAP,
        FOLIO,
        ANON,
    )
    acquired = (*LOCKS, (held, PTE))
    assert lock_order(acquired) == []


def test_lock_order_flags_the_posted_walk() -> None:
    """lock_new_anon_vma() then relocate_anon_ptes()'s pte_offset_map_lock()
    then relocate_anon_pte()'s folio_lock(folio): the folio lock inside
    anon_vma->rwsem, and a sleeping lock under a spinlock."""
    mmap, anon, pte = (
        MMAP,
        ANON,
        PTE,
    )
    acquired = (
        ((), mmap),
        ((mmap,), anon),
        ((mmap, anon), pte),
        ((mmap, anon, pte), FOLIO),
    )
    messages = [v.message for v in lock_order(acquired)]
    assert len(messages) == 2
    assert messages[0].startswith("mm/rmap.c orders folio_lock before anon_vma->rwsem")
    assert messages[1].startswith("folio_lock may sleep, taken under pte_lock (spinlock)")


def test_plain_mremap_keeps_the_lock_order() -> None:
    src = CARVEOUT + (
        "char *a = mmap(&c[1 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,"
        " MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
        "memset(a, 'x', 5 * page_size);\n"
        "a = mremap(a, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &c[20 * page_size]);\n"
    )
    run = run_source(src)
    assert all(lock_order(s.acquired) == [] for s in run.steps)


def test_folio_lock_under_the_pmd_lock_is_flagged() -> None:
    """relocate_anon_pmd(): `ptl = pmd_trans_huge_lock(pmdp, pmc->old);`
    then relocate_large_folio(): `folio_lock(folio);` under that spinlock."""
    src = (
        "char *area = mmap(NULL, 8 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "char *thp = mmap(area + (2 << 20), 2 << 20, PROT_READ | PROT_WRITE,"
        " MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
        "madvise(thp, 2 << 20, MADV_HUGEPAGE);\nthp[0] = 'h';\n"
        "char *m = mremap(thp, 2 << 20, 2 << 20,"
        " MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (4 << 20));\n"
    )
    run = run_source(src)
    (pmd,) = [s for s in run.steps if s.function == "mm/mremap.c:relocate_anon_pmd"]
    messages = [v.message for v in lock_order(pmd.acquired)]
    assert any("taken under pmd_trans_huge_lock (spinlock)" in m for m in messages)


# A 4 MiB VMA faulted in both halves; its second half is moved away and
# back with the flag: copy_vma() merges it with the first half (same
# anon_vma, pgoff in line), so there is nothing to relocate and
# need_rmap_locks = new_vma->vm_pgoff <= vma->vm_pgoff is true.
BACK = (
    "char *area = mmap(NULL, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
    "char *a = mmap(area + (2 << 20), 4 << 20, PROT_READ | PROT_WRITE,"
    " MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
    "a[0] = 1;\na[2 << 20] = 1;\n"
    "char *b = mremap(a + (2 << 20), 2 << 20, 2 << 20, MREMAP_MAYMOVE | MREMAP_FIXED, area + (10 << 20));\n"
    "b = mremap(b, 2 << 20, 2 << 20, MREMAP_MAYMOVE | MREMAP_FIXED | FLAG, a + (2 << 20));\n"
)


def test_move_pgt_entry_releases_rmap_locks_it_did_not_take() -> None:
    """move_pgt_entry() (patch 01): locks are taken only under
    `if (!pmc->need_rmap_locks && should_take_rmap_locks(entry))`, yet
    maybe_drop_rmap_locks(pmc) runs whenever need_rmap_locks is set."""
    run = run_source(BACK.replace("FLAG", "MREMAP_RELOCATE_ANON"))
    assert result(run) == "ok"
    assert any("bad unlock balance" in w for w in warnings(run))
    mainline = run_source(BACK.replace(" | FLAG", ""))
    assert not any("bad unlock balance" in w for w in warnings(mainline))


FORKED = gallery_source("relocate_forked_refused")


@pytest.mark.parametrize(
    ("policy", "source_kept"), [("posted", True), ("posted_stale_stack", False)]
)
def test_must_refusal_leaves_new_vma_unset(policy: str, source_kept: bool) -> None:
    """copy_vma_and_data() (patch 02): `if (err) return err;` before
    *new_vma_ptr is set; move_vma() then tests `if (err && !new_vma)`.
    NULL (a zeroed stack) returns -EFAULT; a stale pointer goes on to
    unmap_source_vma() and the source's data is gone."""
    run = run_source(FORKED, policy=policy)
    first = run.statements[-3]
    assert first.outcome.result.result == "EFAULT"
    steps = run.steps[first.first : first.last]
    assert any("uninitialised variable" in w for s in steps for w in s.warnings)
    assert any("without vrm_uncharge()" in e.decision for s in steps for e in s.events)
    state = steps[-1].state
    writable = [v for v in state.mm_vmas("main") if v.vm_flags & 0x2]
    present = [
        vpn for vpn, pte in state.processes["main"].pagetable.items(0, 1 << 40) if pte.present
    ]
    # ptr and ptr2, 5 faulted pages each, unless the source ptr2 was unmapped
    assert (len(writable), len(present)) == ((2, 10) if source_kept else (1, 5))


def test_huge_zero_pmd_is_left_alone() -> None:
    """relocate_anon_pmd(): `if (is_huge_zero_pmd(pmd)) { ret = true; goto out; }`."""
    src = (
        "char *area = mmap(NULL, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "char *a = mmap(area + (2 << 20), 4 << 20, PROT_READ | PROT_WRITE,"
        " MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
        "madvise(a, 4 << 20, MADV_HUGEPAGE);\n"
        "char x = a[0];\na[2 << 20] = 1;\n"
        "char *m = mremap(a, 4 << 20, 4 << 20,"
        " MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, area + (8 << 20));\n"
    )
    run = run_source(src)
    assert any(s.summary == "walk: huge zero PMD left alone" for s in run.steps)
    assert any(s.summary.endswith("relocated whole") for s in run.steps)
    assert rmap_misses(run) == []


def test_relocated_vma_merging_with_its_own_source_is_followed() -> None:
    """copy_vma_and_data()'s relocating path merges the new VMA with its
    neighbours (vma_merge_existing_range()); when the neighbour is the
    source VMA itself, the source range must be unmapped from the merged
    VMA, not looked up as a VMA that no longer exists (a fuzz find).

        0123456789ABC
        .AAA...CCCBBB   before: c moved next to b, both then faulted
        .AAABBBCCC...   after: b relocated between a and c; 10-12 unmapped
    """
    rw = "PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0"
    flags = "MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON"
    run = run_source(
        "char *carveout = mmap(NULL, 30 * page_size, PROT_NONE,"
        " MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        f"char *a = mmap(&carveout[1 * page_size], 3 * page_size, {rw});\n"
        f"char *b = mmap(&carveout[10 * page_size], 3 * page_size, {rw});\n"
        f"char *c = mmap(&carveout[20 * page_size], 3 * page_size, {rw});\n"
        f"c = mremap(c, 3 * page_size, 3 * page_size, {flags}, &carveout[7 * page_size]);\n"
        "memset(b, 'b', 3 * page_size);\n"
        "memset(c, 'c', 3 * page_size);\n"
        f"b = mremap(b, 3 * page_size, 3 * page_size, {flags}, &carveout[4 * page_size]);\n"
    )
    assert run.error is None
    last = run.statements[-1].outcome
    assert last.result.result == "ok"
    state = run.steps[-1].state
    base = run.statements[0].outcome.result.value
    assert isinstance(base, int)
    anon = [v for v in state.vmas.values() if v.anon_vma is not None]
    covers = [p for p in range(30) if any(v.vm_start <= base + p * 4096 < v.vm_end for v in anon)]
    assert covers == list(range(1, 10))  # b's old pages 10-12 are unmapped
    assert check(state) == []
