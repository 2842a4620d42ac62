"""Runs of folios (FolioRun, Folios) and of PTEs (PteRun) are an encoding only.

Folios must answer as the Map of id -> Folio it stands for under any mix of
edits; a PteRun reads as the Map of its entries; and a whole run with runs
gives the same trace, text and pages as the same run with every folio and
PTE stored one by one (runs switched off), on the gallery, the differential
families and scenarios built to split runs every way the engine can.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.gallery import gallery
from engine.mm_types import Folio, FolioRun, Folios
from engine.pagetable import PRESENT, PageTable, PageTableEditor, Pte, PteRun
from engine.present.report import write_json
from engine.present.statement import render_statement
from engine.sim.kernel import Kernel
from engine.sim.policy import POLICIES
from engine.sim.simulation import run_source
from tests.support.scenario_gen import cases, generate

# --- Folios against a dict --------------------------------------------------

edits = st.lists(
    st.one_of(
        st.tuples(st.just("runs"), st.integers(1, 1200)),
        st.tuples(st.just("set"), st.integers(0, 3000), st.integers(0, 5)),
        st.tuples(st.just("delete"), st.integers(0, 3000)),
        st.tuples(st.just("remap"), st.integers(0, 3000), st.integers(1, 700)),
    ),
    max_size=30,
)


def _expect(folios: Folios, model: dict[int, Folio]) -> None:
    assert len(folios) == len(model)
    assert sorted(folios) == sorted(model)
    assert {f.id: f for f in folios.values()} == model
    for ident in list(model)[:50]:
        assert ident in folios and folios[ident] == model[ident]
    assert 100_000 not in folios and folios.get(100_000) is None


@settings(max_examples=150, deadline=None)
@given(edits)
def test_folios_answer_as_the_map_they_stand_for(ops: list[tuple[int | str, ...]]) -> None:
    folios, model, next_id = Folios(), {}, 7
    for op in ops:
        if op[0] == "runs":
            count = int(op[1])
            run = FolioRun(next_id, count, 3, next_id * 2)
            folios = folios.add_runs([run])
            model.update({i: run.folio(i) for i in range(next_id, next_id + count)})
            next_id += count
        elif op[0] == "set" and model:
            ident = sorted(model)[int(op[1]) % len(model)]
            folio = model[ident]._replace(pincount=int(op[2]))
            folios, model[ident] = folios.set(ident, folio), folio
        elif op[0] == "delete" and model:
            ident = sorted(model)[int(op[1]) % len(model)]
            folios = folios.delete(ident)
            del model[ident]
        elif op[0] == "remap" and model:
            first = sorted(model)[int(op[1]) % len(model)]
            end = first + int(op[2])
            runs = folios.runs_over(first, end)
            in_runs = all(folios.run_holding(i) is not None for i in range(first, end))
            assert (runs is not None) == in_runs
            if runs is not None:
                assert [i for r in runs for i in range(r.first, r.end)] == list(range(first, end))
                folios = folios.remap(first, end, 9, 100)
                for i in range(first, end):
                    model[i] = model[i]._replace(mapping=9, index=100 + i - first)
        _expect(folios, model)
    for run in folios.runs():
        assert run.first >> 9 == (run.end - 1) >> 9


def test_a_folio_stored_from_a_run_leaves_it() -> None:
    folios = Folios().add_runs([FolioRun(510, 4, 2, 40)])
    assert [(r.first, r.nr) for r in sorted(folios.runs())] == [(510, 2), (512, 2)]
    pinned = folios[511]._replace(pincount=1)
    folios = folios.set(511, pinned)
    assert folios.run_holding(511) is None and folios[511] == pinned
    assert folios.runs_over(510, 511) is not None and folios.runs_over(510, 512) is None
    assert len(folios) == 4 and folios[513].index == 43


# --- PteRun reads as its Map -----------------------------------------------


def test_a_pte_run_reads_as_the_map_of_its_entries() -> None:
    run = PteRun(3, 10, 100, True)
    entries = {off: Pte(PRESENT, 100 + off - 3, 0, True) for off in range(3, 10)}
    assert dict(run.items()) == entries and sorted(run) == sorted(entries)
    assert len(run) == 7 and 3 in run and 10 not in run and run.get(2) is None
    assert run[9] == entries[9] and run.folio_of(9) == 106
    with pytest.raises(KeyError):
        run[10]


def test_an_edit_to_a_pte_run_table_makes_it_a_map() -> None:
    editor = PageTableEditor(PageTable())
    editor.fill_run(4, PteRun(0, 512, 1000, True))
    table = editor.commit()
    assert isinstance(table.leaf(4), PteRun) and len(table) == 512
    editor = table.edit()
    editor.set((4 << 9) + 7, None)
    edited = editor.commit()
    leaf = edited.leaf(4)
    assert not isinstance(leaf, PteRun) and leaf is not None
    assert len(edited) == 511 and edited.get((4 << 9) + 7) is None
    assert edited.get((4 << 9) + 8) == Pte(PRESENT, 1008, 0, True)
    assert isinstance(table.leaf(4), PteRun), "the earlier snapshot keeps its table"


# --- a run with runs == the same run without ---------------------------------


def _explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store every folio and PTE one by one, as before runs existed."""

    def put_folio_runs(k: Kernel, runs: list[FolioRun]) -> None:
        k.put_folios([run.folio(i) for run in runs for i in range(run.first, run.end)])

    def map_run(pt: PageTableEditor, run: FolioRun, vpn: int) -> None:
        for i in range(run.nr):
            pt.set(vpn + i, Pte(PRESENT, run.first + i, 0, True))

    monkeypatch.setattr(Kernel, "put_folio_runs", put_folio_runs)
    monkeypatch.setattr("engine.memory._map_run", map_run)


def _outputs(source: str, policy: str | None = None) -> tuple[str, str]:
    run = run_source(source, policy=policy)
    out = io.StringIO()
    write_json(run, out, pages=True)
    text = "\n".join(render_statement(run, i, inner=True) for i in range(len(run.statements)))
    return out.getvalue(), text


def _same_with_and_without_runs(
    monkeypatch: pytest.MonkeyPatch, source: str, policy: str | None = None
) -> None:
    with_runs = _outputs(source, policy)
    with monkeypatch.context() as m:
        _explicit(m)
        without = _outputs(source, policy)
    assert with_runs[0] == without[0]
    assert with_runs[1] == without[1]


SPLIT_EVERY_WAY = """char *r = mmap(NULL, 8192 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *a = mmap(r, 3072 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
a[700 * page_size];
memset(a, 'a', 3072 * page_size);
pin(a + 3 * page_size, page_size);
munmap(a + 2500 * page_size, 2 * page_size);
madvise(a + 900 * page_size, 5 * page_size, MADV_DONTNEED);
mprotect(a + 2600 * page_size, page_size, PROT_READ);
swapout(a + 800 * page_size, page_size);
memset(a + 900 * page_size, 'c', 8 * page_size);
char *c = mremap(a, 2048 * page_size, 2048 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, r + 4096 * page_size);
memset(c, 'd', 10 * page_size);
"""

FORKED = """char *a = mmap(NULL, 1024 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(a, 'a', 1024 * page_size);
pid_t p = fork();
memset(a + 100 * page_size, 'b', 3 * page_size);
char *c = mremap(a, 1024 * page_size, 2048 * page_size, MREMAP_MAYMOVE | MREMAP_RELOCATE_ANON);
"""

WHOLE_FAULT_MOVE = """char *r = mmap(NULL, 3072 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *a = mmap(r, 2048 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *b = mmap(NULL, 1024 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(a, 'a', 2048 * page_size);
memset(b, 'b', 1024 * page_size);
char *c = mremap(b, 1024 * page_size, 1024 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON, a + 2048 * page_size);
"""


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize(
    "source", [SPLIT_EVERY_WAY, FORKED, WHOLE_FAULT_MOVE], ids=["split", "forked", "fault_move"]
)
def test_runs_change_nothing_a_run_shows(
    monkeypatch: pytest.MonkeyPatch, source: str, policy: str
) -> None:
    _same_with_and_without_runs(monkeypatch, source, policy)


def test_the_split_scenario_keeps_some_runs_and_splits_others() -> None:
    """SPLIT_EVERY_WAY does exercise both kinds of table in its walk."""
    run = run_source(SPLIT_EVERY_WAY)
    walk = [s for s in run.steps if s.function == "mm/mremap.c:relocate_anon_ptes"]
    assert walk
    before = walk[0].state
    tables = [
        before.processes["main"].pagetable.leaf(pmd)
        for pmd in before.processes["main"].pagetable.pmd_indexes()
    ]
    assert any(isinstance(t, PteRun) for t in tables)
    assert any(t is not None and not isinstance(t, PteRun) for t in tables)


@pytest.mark.parametrize("entry", gallery(), ids=lambda e: e.slug)
def test_runs_change_nothing_on_the_gallery(monkeypatch: pytest.MonkeyPatch, entry) -> None:  # type: ignore[no-untyped-def]
    _same_with_and_without_runs(monkeypatch, entry.source)


@pytest.mark.parametrize(("family", "seed"), cases(), ids=[f"{f}-{s}" for f, s in cases()])
def test_runs_change_nothing_on_the_differential_families(
    monkeypatch: pytest.MonkeyPatch, family: str, seed: int
) -> None:
    _same_with_and_without_runs(monkeypatch, generate(seed, family))
