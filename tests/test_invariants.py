"""The invariant checker finds each kind of broken state it claims to.

Each test breaks one field of a healthy snapshot by hand and expects the
checker to name it; the healthy snapshot itself must pass.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.gallery import GalleryEntry, gallery
from engine.invariants import Checker, check, summarise
from engine.mm_types import RMAP_MODELS, RmapModel, State
from engine.sim.policy import POLICIES
from engine.sim.simulation import Run, run_source
from engine.sim.trace import Lock
from tests.support.scenario_gen import cases, generate
from tests.test_relocate_policies import (
    BEFORE_WALK,
    CARVEOUT,
    PINNED,
    PTE_MAPPED,
    UNDO_RACE,
    faulted,
    relocate,
)

FAULTED_PAIR = CARVEOUT + faulted("a", 1) + faulted("b", 20)

SOURCE = """char *c = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *a = mmap(&c[page_size], 5 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(a, 'x', 5 * page_size);
"""


def healthy() -> State:
    state = run_source(SOURCE).steps[-1].state
    assert check(state) == []
    return state


def faulted_vma(state: State):  # type: ignore[no-untyped-def]
    return next(v for v in state.vmas.values() if v.anon_vma is not None)


def kinds(state: State, locks: tuple[Lock, ...] = ()) -> set[str]:
    return {v.kind for v in check(state, locks)}


def test_overlapping_vmas() -> None:
    state = healthy()
    vma = faulted_vma(state)
    state = state._replace(vmas=state.vmas.set(vma.id, replace(vma, vm_end=vma.vm_end + 4096)))
    assert "vma" in kinds(state)


def test_chain_missing_from_the_anon_vma_tree() -> None:
    state = healthy()
    vma = faulted_vma(state)
    av = state.anon_vmas[vma.anon_vma]
    state = state._replace(anon_vmas=state.anon_vmas.set(av.id, replace(av, chains=frozenset())))
    assert "chain" in kinds(state)


def test_counter_off_by_one() -> None:
    state = healthy()
    av = next(iter(state.anon_vmas.values()))
    state = state._replace(anon_vmas=state.anon_vmas.set(av.id, replace(av, num_active_vmas=2)))
    assert kinds(state) == {"counter"}


def test_index_not_linear_is_an_rmap_miss() -> None:
    state = healthy()
    folio = next(iter(state.folios.values()))
    state = state._replace(folios=state.folios.set(folio.id, folio._replace(index=folio.index + 7)))
    (violation,) = check(state)
    assert violation.kind == "rmap" and "linear_page_index" in violation.message


def test_mapping_a_freed_anon_vma() -> None:
    state = healthy()
    folio = next(iter(state.folios.values()))
    state = state._replace(folios=state.folios.set(folio.id, folio._replace(mapping=999)))
    (violation,) = check(state)
    assert "freed" in violation.message and not violation.locked


def test_a_write_locked_anon_vma_hides_the_mismatch_from_racing_walkers() -> None:
    state = healthy()
    vma = faulted_vma(state)
    folio = next(iter(state.folios.values()))
    state = state._replace(folios=state.folios.set(folio.id, folio._replace(index=0)))
    assert vma.anon_vma is not None
    (violation,) = check(state, (Lock.anon_vma_write(vma.anon_vma),))
    assert violation.locked


# --- the incremental checker finds what the full check finds ------------------


def assert_incremental_is_full(run: Run) -> int:
    """At every step, Checker.summarise() == summarise() of the whole state,
    and the summary stands for exactly the pages check() lists one by one.
    Returns how many violations the run had, summed over its steps."""
    checker = Checker()
    seen = 0
    for step in run.steps:
        got = checker.summarise(step.state, step.held, step.folios_touched())
        assert got == summarise(step.state, step.held), step.function
        per_page = check(step.state, step.held)
        assert sum(v.pages for v in got) == len(per_page)
        assert {v for v in got if v.pages == 1} <= set(per_page)
        seen += len(per_page)
    return seen


@pytest.mark.parametrize("model", RMAP_MODELS)
@pytest.mark.parametrize("entry", gallery(), ids=lambda e: e.slug)
def test_incremental_check_on_the_gallery(entry: GalleryEntry, model: RmapModel) -> None:
    for policy in POLICIES if "relocate" in entry.slug else ("posted",):
        assert_incremental_is_full(run_source(entry.source, policy=policy, rmap_model=model))


def test_incremental_check_sees_violations_at_all() -> None:
    """The gallery's relocating walks do break the invariant mid-walk (so
    the comparison above compares something)."""
    runs = [run_source(e.source) for e in gallery() if "relocate" in e.slug]
    assert sum(assert_incremental_is_full(r) for r in runs) > 0


@pytest.mark.parametrize(("family", "seed"), cases(), ids=[f"{f}-{s}" for f, s in cases()])
def test_incremental_check_on_the_differential_families(family: str, seed: int) -> None:
    assert_incremental_is_full(run_source(generate(seed, family)))


INJECTED = {
    "pinned": PINNED,
    "gup_fast_race_during_undo": UNDO_RACE,
    "gup_fast_before_walk": BEFORE_WALK,
    "swap_entry": FAULTED_PAIR
    + "swapout(b + page_size, page_size);\n"
    + relocate("b", "&a[5 * page_size]"),
    "migration_entry": FAULTED_PAIR
    + "migrate_entry(b + page_size, page_size);\n"
    + relocate("b", "&a[5 * page_size]"),
    "straddling_large_folio": PTE_MAPPED
    + "char *m = mremap(thp, 1 << 20, 1 << 20, MREMAP_MAYMOVE | MREMAP_FIXED"
    " | MREMAP_RELOCATE_ANON, thp + (2 << 20));\n",
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("name", sorted(INJECTED))
def test_incremental_check_on_the_injected_failures(name: str, policy: str) -> None:
    """tests/test_relocate_policies.py's injections, each under every policy."""
    assert_incremental_is_full(run_source(INJECTED[name], policy=policy))


def test_a_run_of_pages_is_one_record() -> None:
    """512 pages relocated but not yet moved: one record, range and count."""
    source = (
        "char *a = mmap(NULL, 1024 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "char *b = mmap(NULL, 1024 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "memset(b, 'b', 1024 * page_size);\n"
        "char *c = mremap(b, 1024 * page_size, 1024 * page_size,"
        " MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, a);\n"
    )
    run = run_source(source)
    walk = [s for s in run.steps if s.function == "mm/mremap.c:relocate_anon_ptes"]
    (record,) = summarise(walk[0].state, walk[0].held)
    assert record.pages == 512 and record.locked
    assert "(512)" in record.message and "write-locked anon_vma#" in record.message
    assert len(check(walk[0].state, walk[0].held)) == 512


def test_a_table_rechecked_inside_a_run_splits_and_rejoins_it() -> None:
    """A run over four PTE tables, broken and mended in a middle table:

        table      t0    t1    t2    t3
        shifted    xxxx  xxxx  xxxx  xxxx   one record, every page
        t1 mended  xxxx  ....  xxxx  xxxx   two records either side of t1
        t1 again   xxxx  xxxx  xxxx  xxxx   one record again

    Each step the incremental checker splices t1 into its joined runs; the
    full summarise() is the reference."""
    source = (
        "char *a = mmap(NULL, 2048 * page_size, PROT_READ | PROT_WRITE,"
        " MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "memset(a, 'a', 2048 * page_size);\n"
    )
    healthy = run_source(source).steps[-1].state
    (mm,) = healthy.processes.values()
    tables = mm.pagetable.pmd_indexes()
    assert len(tables) >= 4

    def folios_of(pmd: int) -> list[int]:
        leaf = mm.pagetable.leaf(pmd)
        assert leaf is not None
        return sorted({pte.folio for _, pte in leaf.items()})

    def shifted(state: State, ids: list[int], by: int) -> State:
        folios = state.folios
        for ident in ids:
            folio = folios[ident]
            folios = folios.set(ident, folio._replace(index=folio.index + by))
        return state._replace(folios=folios)

    every = [f for pmd in tables for f in folios_of(pmd)]
    middle = folios_of(tables[1])
    states = [healthy, shifted(healthy, every, 7)]
    states += [shifted(states[1], middle, -7), states[1]]
    touched = [[], [range(min(every), max(every) + 1)], [range(middle[0], middle[-1] + 1)]]
    touched.append(touched[2])
    checker = Checker()
    shown = []
    for state, folios in zip(states, touched, strict=True):
        got = checker.summarise(state, (), folios)
        assert got == summarise(state)
        shown.append((len(got), sum(v.pages for v in got)))
    pages = len(every)
    assert shown == [(0, 0), (1, pages), (2, pages - len(middle)), (1, pages)]
