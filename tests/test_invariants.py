"""The invariant checker finds each kind of broken state it claims to.

Each test breaks one field of a healthy snapshot by hand and expects the
checker to name it; the healthy snapshot itself must pass.
"""

from __future__ import annotations

from dataclasses import replace

from engine.invariants import check
from engine.mm_types import State
from engine.sim.simulation import run_source
from engine.sim.trace import Lock

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
