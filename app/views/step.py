"""The state panel of one inner step: what it did, why, under which locks, and
the drawings of the state it shows (app.views.address_map, anon_graph, folios)."""

from __future__ import annotations

from pydantic import BaseModel

from app.runs import invariant_violations
from app.views.address_map import AddressMap, address_map
from app.views.anon_graph import AnonGraph, anon_graph
from app.views.folios import FolioTable, folio_table
from app.views.picture import Picture, picture
from app.views.unfinished import UnfinishedView, unfinished_view
from engine.accounting import metadata
from engine.mm_types import RmapModel, State
from engine.present.tables import cow_context_table
from engine.present.trace import event_values, lock_summary, ref_runs
from engine.procfs import proc_maps
from engine.sim.simulation import Changes, Run, View
from engine.sim.trace import Lock


class EventView(BaseModel):
    function: str
    decision: str
    values: dict[str, str]
    unfinished: UnfinishedView | None = None


class WalkCostView(BaseModel):
    """How many folios' rmap walks visit so many VMAs, offsets and rmap objects."""

    folios: int
    vmas: int
    offsets: int
    rmap_objects: int


class Counts(BaseModel):
    """What a reviewer counts in a state, under its rmap model (engine.accounting)."""

    rmap_model: RmapModel
    processes: int
    vmas: int
    anon_vmas: int
    anon_vma_chains: int
    cow_contexts: int
    exited_cow_contexts: int
    remap_entries: int
    remap_offsets: int
    stale_remap_offsets: int
    folios: int
    bytes: int
    sizes_source: str
    walks: list[WalkCostView] | None
    """Each distinct walk cost; None past MAX_WALKED_FOLIOS."""

    def rows(self) -> list[tuple[str, str, str]]:
        """The compact table: (key, what, how many), the model's own objects only."""
        if self.rmap_model == "cow_context":
            rmap = [
                (
                    "cow_contexts",
                    "cow_contexts",
                    f"{self.cow_contexts} ({self.exited_cow_contexts} exited)",
                ),
                (
                    "remap_entries",
                    "remap entries",
                    f"{self.remap_entries} ({self.remap_offsets} offsets,"
                    f" {self.stale_remap_offsets} stale)",
                ),
            ]
        else:
            rmap = [
                ("anon_vmas", "anon_vmas", str(self.anon_vmas)),
                ("anon_vma_chains", "anon_vma_chains", str(self.anon_vma_chains)),
            ]
        return [
            ("vmas", "VMAs", str(self.vmas)),
            *rmap,
            ("folios", "folios", str(self.folios)),
            ("processes", "processes", str(self.processes)),
            ("bytes", "kernel bytes", str(self.bytes)),
        ]

    def walk_rows(self) -> list[str]:
        """Per-folio walk cost, one line per distinct cost."""
        objects = "contexts" if self.rmap_model == "cow_context" else "anon_vmas"
        if self.walks is None:
            return ["not counted: more folios than MAX_WALKED_FOLIOS"]
        return [
            f"{w.folios} folio{'s' if w.folios != 1 else ''}: {w.vmas} VMAs,"
            + (f" {w.offsets} offsets," if self.rmap_model == "cow_context" else "")
            + f" {w.rmap_objects} {objects}"
            for w in self.walks
        ]


class ViolationView(BaseModel):
    kind: str
    message: str
    objects: list[str]
    locked: bool = False
    pages: int = 1
    unfinished: UnfinishedView | None = None


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
    cow_table: list[str]
    """Under cow_context: every context and its remap entries, as text (engine.present.tables)."""
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
    m = metadata(state)
    return Counts(
        rmap_model=m.rmap_model,
        processes=m.processes,
        vmas=m.vmas,
        anon_vmas=m.anon_vmas,
        anon_vma_chains=m.anon_vma_chains,
        cow_contexts=m.cow_contexts,
        exited_cow_contexts=m.exited_cow_contexts,
        remap_entries=m.remap_entries,
        remap_offsets=m.remap_offsets,
        stale_remap_offsets=m.stale_remap_offsets,
        folios=m.folios,
        bytes=m.bytes,
        sizes_source=m.sizes_source,
        walks=None
        if m.walks is None
        else [WalkCostView(folios=n, **cost._asdict()) for cost, n in m.walks],
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
            EventView(
                function=e.function,
                decision=e.decision,
                values=event_values(e),
                unfinished=unfinished_view(e.unfinished),
            )
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
        cow_table=cow_context_table(shown.state),
        folios=folio_table(shown.state, shown.changes),
    )
