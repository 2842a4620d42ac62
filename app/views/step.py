"""The state panel of one inner step: what it did, why, under which locks, and
the drawings of the state it shows (app.views.address_map, anon_graph, folios)."""

from __future__ import annotations

from pydantic import BaseModel

from app.runs import invariant_violations
from app.views.address_map import AddressMap, address_map
from app.views.anon_graph import AnonGraph, anon_graph
from app.views.folios import FolioTable, folio_table
from app.views.picture import Picture, picture
from engine.accounting import metadata
from engine.mm_types import State
from engine.present.trace import event_values, lock_summary, ref_runs
from engine.procfs import proc_maps
from engine.sim.simulation import Changes, Run, View
from engine.sim.trace import Lock


class EventView(BaseModel):
    function: str
    decision: str
    values: dict[str, str]


class Counts(BaseModel):
    processes: int
    vmas: int
    anon_vmas: int
    anon_vma_chains: int
    folios: int
    bytes: int


class ViolationView(BaseModel):
    kind: str
    message: str
    objects: list[str]
    locked: bool = False
    pages: int = 1


class ChangesView(BaseModel):
    """What a step (or its statement) created, changed and freed: "vma:3",
    a run of consecutive ids as one entry ("folio:5-2052 (2048)")."""

    created: list[str]
    changed: list[str]
    freed: list[str]


class StatementView(BaseModel):
    index: int
    line: int
    source: str
    process: str
    result: str
    value: int | None
    first: int
    last: int


class StepView(BaseModel):
    """Everything one step's state panel shows."""

    index: int
    total: int
    view: View
    statement: StatementView
    statements: int
    function: str
    summary: str
    locks: list[str]
    events: list[EventView]
    warnings: list[str]
    changes: ChangesView
    counts: Counts
    violations: list[ViolationView]
    maps: dict[str, list[str]]
    picture: Picture
    address_map: AddressMap
    anon_graph: AnonGraph
    folios: FolioTable


def statement_view(run: Run, index: int) -> StatementView:
    st = run.statements[index]
    stmt = st.outcome.statement
    return StatementView(
        index=index,
        line=stmt.line,
        source=stmt.source,
        process=stmt.process,
        result=st.outcome.result.result,
        value=st.outcome.result.value,
        first=st.first,
        last=st.last,
    )


def counts(state: State) -> Counts:
    m = metadata(state, walks=False)
    return Counts(
        processes=m.processes,
        vmas=m.vmas,
        anon_vmas=m.anon_vmas,
        anon_vma_chains=m.anon_vma_chains,
        folios=m.folios,
        bytes=m.bytes,
    )


def violations(state: State, locks: tuple[Lock, ...] = ()) -> list[ViolationView]:
    return [ViolationView(**v) for v in invariant_violations(state, locks)]


def changes_view(changes: Changes) -> ChangesView:
    return ChangesView(
        created=ref_runs(changes.created),
        changed=ref_runs(changes.changed),
        freed=ref_runs(changes.freed),
    )


def step_view(run: Run, index: int, view: View = "step") -> StepView:
    """The state panel for inner step `index`, or its statement's before/after."""
    step = run.steps[index]
    shown = run.shown(index, view)
    return StepView(
        index=index,
        total=len(run.steps),
        view=view,
        statement=statement_view(run, run.statement_of(index)),
        statements=len(run.statements),
        function=step.function,
        summary=step.summary,
        locks=lock_summary(step.locks, step.held),
        events=[
            EventView(function=e.function, decision=e.decision, values=event_values(e))
            for e in step.events
        ],
        warnings=list(step.warnings),
        changes=changes_view(shown.changes),
        counts=counts(shown.state),
        violations=violations(shown.state, shown.held),
        maps=proc_maps(shown.state),
        picture=picture(shown.state, shown.changes, shown.before, shown.held),
        address_map=address_map(
            shown.state, shown.changes, shown.before, step.events if view == "step" else ()
        ),
        anon_graph=anon_graph(shown.state, shown.changes),
        folios=folio_table(shown.state, shown.changes),
    )
