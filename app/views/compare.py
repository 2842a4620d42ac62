"""The compare view: up to COMPARE_MAX_VARIANTS runs of one scenario, side by side,
stepped together.

Every variant keeps the scenario's statements (engine/variants.py), so the
runs line up by statement; within one, by inner step: position k shows each
run's k-th inner step of that statement (its last, once a shorter run is
done). Where every run is in the same kernel function the runs share a path
(lockstep); where they are not, the paths have parted, and the view says
so. Each column has the central picture and its counts, and everything
that differs from the first column is marked.

The pictures are compact (app.views.picture.Focus): only the address ranges
where some run differs from the first are drawn, the rest is one narrow
"same" column, so five or six fit side by side on a projector; in each, the
pages and VMAs not so in the first run are marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from app.views.folios import FolioRow, folio_table
from app.views.picture import Focus, Picture, picture
from app.views.step import Counts, StatementView, ViolationView, counts, statement_view, violations
from engine.mm_types import State
from engine.procfs import proc_maps
from engine.sim.simulation import Changes, Run, Shown

COMPARE_FOLIO_CAP = 128


class CompareSide(BaseModel):
    variant: str
    description: str
    statement: StatementView
    function: str
    """The kernel function of the inner step shown ("" after the statement)."""
    summary: str
    done: bool
    """This run's statement had fewer inner steps: it shows its last."""
    counts: Counts
    counts_differ: list[str]
    """The counts that differ from the first column's."""
    result_differs: bool
    changes: Changes
    violations: list[ViolationView]
    maps: dict[str, list[tuple[str, bool]]]
    picture: Picture
    folios: list[tuple[FolioRow, bool]]
    folio_total: int


class CompareView(BaseModel):
    """Runs of one scenario at the same statement and inner step."""

    index: int
    statements: int
    step: int | None
    """The inner step within the statement, None for the state after it."""
    steps: int
    """Inner steps of this statement in the longest run."""
    lockstep: bool
    """Every run is in the same kernel function at this step."""
    sides: list[CompareSide]
    differences: list[str]


def _shown(run: Run, index: int, step: int | None) -> tuple[Shown, str, str, bool]:
    """What a run shows at statement `index`, inner step `step` (None: after it)."""
    st = run.statements[index]
    if step is None or st.first >= st.last:
        before, after = run.statement_states(index)
        changes = Changes.of_steps(run.statement_steps(index))
        held = run.steps[st.last - 1].held if st.first < st.last else ()
        return Shown(after, before, held, changes), "", "", False
    at = min(st.first + step, st.last - 1)
    here = run.steps[at]
    return run.shown(at), here.function, here.summary, st.first + step > st.last - 1


VmaLook = tuple[int, int, int, int, bool]
"""vm_start, vm_end, vm_flags, vm_pgoff, has an anon_vma: a VMA as two runs can share it."""
PageKey = tuple[str, int]
"""(process, address)"""


def _vma_looks(state: State) -> dict[str, dict[VmaLook, int]]:
    """Per process, each VMA's look and its id."""
    return {
        name: {
            (v.vm_start, v.vm_end, v.vm_flags, v.vm_pgoff, v.anon_vma is not None): v.id
            for v in state.mm_vmas(name)
        }
        for name in state.process_names()
    }


def _focuses(states: list[State], pages: Sequence[Mapping[PageKey, object]]) -> list[Focus]:
    """Each run's Focus: the address ranges where any run differs from the first (whole
    VMAs: those not alike in both, and those holding a page that differs), and what
    of this run differs from the first."""
    looks = [_vma_looks(st) for st in states]
    keep: set[tuple[int, int]] = set()
    differ: list[tuple[frozenset[PageKey], frozenset[int]]] = []
    for i, st in enumerate(states):
        keys = set(pages[0]) | set(pages[i])
        odd_pages = frozenset(k for k in keys if pages[i].get(k) != pages[0].get(k))
        odd_vmas = set()
        for name in set(looks[0]) | set(looks[i]):
            mine, first = looks[i].get(name, {}), looks[0].get(name, {})
            for look in set(mine) ^ set(first):
                keep.add((look[0], look[1]))
            odd_vmas |= {mine[look] for look in set(mine) - set(first)}
        for name, addr in odd_pages:
            for s in (st, states[0]):
                vma = (
                    next((v for v in s.mm_vmas(name) if v.vm_start <= addr < v.vm_end), None)
                    if name in s.processes
                    else None
                )
                keep.add((vma.vm_start, vma.vm_end) if vma else (addr, addr + 1))
        differ.append((odd_pages, frozenset(odd_vmas)))
    ranges = tuple(sorted(keep))
    return [Focus(keep=ranges, pages=p, vmas=v) for p, v in differ]


def compare_view(
    runs: list[Run], variants: list[tuple[str, str]], index: int, step: int | None
) -> CompareView:
    """Every run at statement `index` and inner step `step`, marked where it differs
    from the first."""
    steps = max(len(run.statement_steps(index)) for run in runs)
    if step is not None:
        step = max(0, min(step, steps - 1))
    shown = [_shown(run, index, step) for run in runs]
    states = [s.state for s, *_ in shown]
    maps = [proc_maps(st) for st in states]
    tables = [folio_table(s.state, s.changes, COMPARE_FOLIO_CAP) for s, *_ in shown]
    keyed = [
        {
            (r.process, r.address): (r.kind, r.folio, r.index, r.mapping, r.mapcount, r.exclusive)
            for r in t.rows
        }
        for t in tables
    ]
    focuses = _focuses(states, keyed)
    stmts = [statement_view(run, index) for run in runs]
    cnts = [counts(st) for st in states]
    first = 0
    differences = []
    sides = []
    for i, (run_shown, function, summary, done) in enumerate(shown):
        name = variants[i][0]
        if i != first:
            found = []
            if stmts[i].result != stmts[first].result:
                found.append(f"result {stmts[i].result}, not {stmts[first].result}")
            for proc in sorted(set(maps[first]) | set(maps[i])):
                if maps[first].get(proc) != maps[i].get(proc):
                    found.append(f"the VMAs of {proc}")
            theirs = {key: value for key, _, value in cnts[first].rows()}
            for key, what, value in cnts[i].rows():
                if theirs.get(key) != value:
                    found.append(
                        f"{what} {value}, not "
                        + theirs.get(key, f"counted under {cnts[first].rmap_model}")
                    )
            if keyed[i] != keyed[first]:
                found.append("pages and folios")
            if found:
                differences.append(f"{name}: " + "; ".join(found))
        sides.append(
            CompareSide(
                variant=name,
                description=variants[i][1],
                statement=stmts[i],
                function=function,
                summary=summary,
                done=done,
                counts=cnts[i],
                counts_differ=[
                    key
                    for key, _, value in cnts[i].rows()
                    if value not in (v for k, _, v in cnts[first].rows() if k == key)
                ],
                result_differs=stmts[i].result != stmts[first].result,
                changes=run_shown.changes,
                violations=violations(run_shown.state, run_shown.held),
                maps={
                    proc: [(line, line not in maps[first].get(proc, [])) for line in lines]
                    for proc, lines in maps[i].items()
                },
                picture=picture(
                    run_shown.state,
                    run_shown.changes,
                    run_shown.before,
                    run_shown.held,
                    focuses[i],
                ),
                folios=[
                    (
                        r,
                        keyed[first].get((r.process, r.address))
                        != keyed[i][(r.process, r.address)],
                    )
                    for r in tables[i].rows
                ],
                folio_total=tables[i].total,
            )
        )
    widest = max(s.picture.width for s in sides)
    for s in sides:  # one scale for every column: a page is as wide in each
        s.picture.width = widest
    functions = {s.function for s in sides if not s.done}
    return CompareView(
        index=index,
        statements=min(len(r.statements) for r in runs),
        step=step,
        steps=steps,
        lockstep=len(functions) <= 1,
        sides=sides,
        differences=differences,
    )
