"""Snapshots into what the templates draw: bars, graph nodes, table rows.

No kernel logic and no HTML: every fact comes from the engine's State,
Step and Run; this module only lays them out (x positions, rows, which
object changed) for templates/ and for the pages' JSON twins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel

from app.runs import invariant_violations
from engine.accounting import metadata
from engine.invariants import rmap_check
from engine.mm_constants import PAGE_SHIFT, PAGE_SIZE
from engine.mm_types import VMA, State, flag_names
from engine.pagemap import linear_page_index
from engine.pagetable import ZERO_PAGE
from engine.procfs import maps_line
from engine.sim.simulation import Run
from engine.sim.trace import Event, Step
from engine.vma import explain_adjacent

FOLIO_ROW_CAP = 512
PALETTE_SIZE = 8

View = Literal["step", "before", "after"]
Change = Literal["", "created", "changed"]

# SVG geometry, in CSS pixels of the viewBox.
MAP_WIDTH = 960
MAP_LEFT = 70
MAP_RIGHT = 10
LANE_HEIGHT = 44
LANE_GAP = 34
GAP_WIDTH = 28
MIN_BAR = 10
NODE_W = 150
NODE_H = 38
ROW_H = 48


class Changes(BaseModel):
    """The objects a step (or a whole statement) created, changed and freed."""

    created: list[str] = []
    changed: list[str] = []
    freed: list[str] = []

    def of(self, ref: str) -> Change:
        if ref in self.created:
            return "created"
        if ref in self.changed:
            return "changed"
        return ""


class VmaBar(BaseModel):
    id: int
    process: str
    start: int
    end: int
    pages: int
    pgoff: int
    perms: str
    flags: list[str]
    anon_vma: int | None
    avc: list[int]
    colour: int
    change: Change
    x: float
    width: float
    merge_note: str | None = None
    compared: dict[str, str] = {}
    """Columns a merge rule compared at this step: column -> what it compared."""


class Gap(BaseModel):
    x: float
    width: float
    pages: int


class Lane(BaseModel):
    process: str
    pid: int
    parent: str | None
    y: float
    bars: list[VmaBar]


class AddressMap(BaseModel):
    width: int
    height: int
    lanes: list[Lane]
    gaps: list[Gap]
    ticks: list[tuple[float, int]]


class AnonNode(BaseModel):
    id: int
    root: int
    parent: int
    refcount: int
    num_children: int
    num_active_vmas: int
    chains: list[int]
    depth: int
    colour: int
    change: Change
    x: float
    y: float


class VmaNode(BaseModel):
    id: int
    process: str
    label: str
    x: float
    y: float


class Edge(BaseModel):
    kind: Literal["parent", "chain"]
    path: str
    label: str


class AnonGraph(BaseModel):
    width: int
    height: int
    nodes: list[AnonNode]
    vmas: list[VmaNode]
    edges: list[Edge]


class FolioRow(BaseModel):
    process: str
    address: int
    vma: int
    kind: str
    folio: int
    order: int
    page: int
    index: int | None
    mapping: int | None
    mapcount: int | None
    pins: int
    exclusive: bool | None
    linear: int
    index_ok: bool | None
    change: Change


class FolioTable(BaseModel):
    rows: list[FolioRow]
    total: int
    cap: int

    @property
    def capped(self) -> bool:
        return self.total > len(self.rows)


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
    changes: Changes
    counts: Counts
    violations: list[ViolationView]
    maps: dict[str, list[str]]
    address_map: AddressMap
    anon_graph: AnonGraph
    folios: FolioTable


class SourceLine(BaseModel):
    number: int
    text: str
    statement: int | None
    result: str | None
    first_step: int | None
    current: bool
    error_col: int | None = None


# --- one step --------------------------------------------------------------


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


def statement_of(run: Run, step: int) -> int:
    """The index of the statement whose inner steps include `step`."""
    return min(run.steps[step].statement, len(run.statements) - 1)


def step_view(run: Run, index: int, view: View = "step") -> StepView:
    """The state panel for inner step `index`, or its statement's before/after."""
    step = run.steps[index]
    s = statement_of(run, index)
    st = run.statements[s]
    locks = step.held
    if view == "before":
        state, changes, before = run.steps[st.first].state, Changes(), None
        locks = run.steps[st.first].held
    elif view == "after":
        state = run.steps[st.last - 1].state
        locks = run.steps[st.last - 1].held
        changes = _union(run.steps[st.first : st.last])
        before = run.steps[st.first].state
    else:
        state, changes = step.state, _changes(step)
        before = run.steps[index - 1].state if index else None
    return StepView(
        index=index,
        total=len(run.steps),
        view=view,
        statement=statement_view(run, s),
        statements=len(run.statements),
        function=step.function,
        summary=step.summary,
        locks=list(step.locks),
        events=[
            EventView(function=e.function, decision=e.decision, values=dict(e.values))
            for e in step.events
        ],
        warnings=list(step.warnings),
        changes=changes,
        counts=counts(state),
        violations=[ViolationView(**v) for v in invariant_violations(state, locks)],
        maps={name: [maps_line(state, v) for v in state.mm_vmas(name)] for name in state.processes},
        address_map=address_map(state, changes, before, step.events if view == "step" else ()),
        anon_graph=anon_graph(state, changes),
        folios=folio_table(state, changes),
    )


def _changes(step: Step) -> Changes:
    return Changes(created=list(step.created), changed=list(step.changed), freed=list(step.freed))


def _union(steps: Iterable[Step]) -> Changes:
    created: dict[str, None] = {}
    changed: dict[str, None] = {}
    freed: dict[str, None] = {}
    for step in steps:
        created.update(dict.fromkeys(step.created))
        changed.update(dict.fromkeys(r for r in step.changed if r not in created))
        freed.update(dict.fromkeys(step.freed))
    return Changes(
        created=[r for r in created if r not in freed],
        changed=[r for r in changed if r not in freed],
        freed=list(freed),
    )


def counts(state: State) -> Counts:
    return Counts(**metadata(state).as_dict())


def maps_line_perms(flags: list[str]) -> str:
    """The rwxp column of /proc/PID/maps from the engine's flag names."""
    return (
        ("r" if "read" in flags else "-")
        + ("w" if "write" in flags else "-")
        + ("x" if "exec" in flags else "-")
        + ("s" if "mayshare" in flags else "p")
    )


def _colours(state: State) -> dict[int, int]:
    return {av: i % PALETTE_SIZE for i, av in enumerate(sorted(state.anon_vmas))}


# --- the address-space map ---------------------------------------------------


def compared_columns(events: Sequence[Event]) -> dict[int, dict[str, str]]:
    """Which VMA table cells a step's merge rules compared, and what they found.

    A merge decision names its candidate VMA and its rule (engine/vma.py);
    the cell of the attribute the rule looked at is highlighted.
    """
    found: dict[int, dict[str, str]] = {}
    for event in events:
        values = dict(event.values)
        candidate, rule = values.get("candidate"), values.get("rule", "")
        if not candidate or not candidate.startswith("vma#"):
            continue
        cells = found.setdefault(int(candidate[4:]), {})
        if "expected_pgoff" in values:
            cells["pgoff"] = f"expected {values['expected_pgoff']}, found {values['found_pgoff']}"
        if rule.endswith("vm_flags"):
            cells["flags"] = f"flags differ: {values.get('differ', '')}"
        if rule.startswith("is_mergeable_anon_vma"):
            cells["anon_vma"] = rule
    return found


def address_map(
    state: State, changes: Changes, before: State | None = None, events: Sequence[Event] = ()
) -> AddressMap:
    """VMAs as bars on one address axis shared by all processes; long gaps compressed.

    The axis also has the boundaries of `before` (the state the step started
    from), so a range that moved keeps both its old and new place on screen.
    """
    intervals = [(v.vm_start, v.vm_end) for v in state.vmas.values()]
    if before is not None:
        intervals += [(v.vm_start, v.vm_end) for v in before.vmas.values()]
    xs, gaps, ticks = _axis(intervals)
    colours = _colours(state)
    compared = compared_columns(events)
    lanes = []
    for n, name in enumerate(sorted(state.processes, key=lambda p: state.processes[p].pid)):
        mm = state.processes[name]
        vmas = state.mm_vmas(name)
        bars = []
        for i, v in enumerate(vmas):
            flags = flag_names(v.vm_flags)
            note = None
            if i and vmas[i - 1].vm_end == v.vm_start:
                verdict = explain_adjacent(state, vmas[i - 1], v)
                note = ("could merge with" if verdict.ok else "not merged with") + (
                    f" vma#{vmas[i - 1].id}: {verdict.why}"
                )
            bars.append(
                VmaBar(
                    id=v.id,
                    process=name,
                    start=v.vm_start,
                    end=v.vm_end,
                    pages=v.pages,
                    pgoff=v.vm_pgoff,
                    perms=maps_line_perms(flags),
                    flags=flags,
                    anon_vma=v.anon_vma,
                    avc=list(v.avc),
                    colour=-1 if v.anon_vma is None else colours.get(v.anon_vma, 0),
                    change=changes.of(f"vma:{v.id}"),
                    x=xs[v.vm_start],
                    width=max(xs[v.vm_end] - xs[v.vm_start], 2.0),
                    merge_note=note,
                    compared=compared.get(v.id, {}),
                )
            )
        lanes.append(
            Lane(
                process=name,
                pid=mm.pid,
                parent=mm.parent,
                y=10 + n * (LANE_HEIGHT + LANE_GAP),
                bars=bars,
            )
        )
    height = 20 + max(1, len(lanes)) * (LANE_HEIGHT + LANE_GAP)
    return AddressMap(width=MAP_WIDTH, height=height, lanes=lanes, gaps=gaps, ticks=ticks)


def _axis(
    intervals: list[tuple[int, int]],
) -> tuple[dict[int, float], list[Gap], list[tuple[float, int]]]:
    """x for every boundary address: mapped stretches to scale, long gaps a fixed break."""
    bounds = sorted({a for iv in intervals for a in iv})
    if not bounds:
        return {}, [], []
    covered = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        covered.append(any(s <= lo and hi <= e for s, e in intervals))
    pages = [(hi - lo) >> PAGE_SHIFT for lo, hi in zip(bounds, bounds[1:], strict=False)]
    mapped = [p for p, c in zip(pages, covered, strict=True) if c]
    linear = not mapped or max(mapped) <= 64 * min(mapped)
    weights = [
        (p if linear else math.sqrt(p)) if c else 0.0 for p, c in zip(pages, covered, strict=True)
    ]
    n_gaps = covered.count(False)
    room = MAP_WIDTH - MAP_LEFT - MAP_RIGHT - n_gaps * GAP_WIDTH
    total = sum(weights) or 1.0
    xs = {bounds[0]: float(MAP_LEFT)}
    gaps = []
    x = float(MAP_LEFT)
    for i, (w, c) in enumerate(zip(weights, covered, strict=True)):
        if c:
            width = max(MIN_BAR, room * w / total)
        else:
            width = GAP_WIDTH
            gaps.append(Gap(x=x, width=width, pages=pages[i]))
        x += width
        xs[bounds[i + 1]] = x
    scale = (MAP_WIDTH - MAP_RIGHT - MAP_LEFT) / (x - MAP_LEFT) if x > MAP_LEFT else 1.0
    if scale < 1.0:
        xs = {a: MAP_LEFT + (v - MAP_LEFT) * scale for a, v in xs.items()}
        gaps = [
            Gap(x=MAP_LEFT + (g.x - MAP_LEFT) * scale, width=g.width * scale, pages=g.pages)
            for g in gaps
        ]
    ticks: list[tuple[float, int]] = []
    for a in bounds[:-1]:
        if not ticks or xs[a] - ticks[-1][0] >= 100:
            ticks.append((round(xs[a], 1), a))
    end = round(xs[bounds[-1]], 1)  # drawn right-aligned: keep clear of its label
    ticks = [t for t in ticks if end - t[0] >= 180 or t[0] == MAP_LEFT] + [(end, bounds[-1])]
    return {a: round(v, 1) for a, v in xs.items()}, gaps, ticks


# --- the anon_vma hierarchy ------------------------------------------------------


def anon_graph(state: State, changes: Changes) -> AnonGraph:
    """anon_vmas by depth under their root, VMAs in a last column, chains as edges."""
    avs = state.anon_vmas
    depth: dict[int, int] = {}
    for av_id in avs:
        d, cur, seen = 0, avs[av_id], set()
        while cur.parent != cur.id and cur.parent in avs and cur.id not in seen:
            seen.add(cur.id)
            cur, d = avs[cur.parent], d + 1
        depth[av_id] = d
    colours = _colours(state)
    order = sorted(avs, key=lambda a: (avs[a].root, depth[a], a))
    nodes = []
    for row, av_id in enumerate(order):
        av = avs[av_id]
        nodes.append(
            AnonNode(
                id=av.id,
                root=av.root,
                parent=av.parent,
                refcount=av.refcount,
                num_children=av.num_children,
                num_active_vmas=av.num_active_vmas,
                chains=sorted(av.chains),
                depth=depth[av_id],
                colour=colours[av_id],
                change=changes.of(f"anon_vma:{av.id}"),
                x=10 + depth[av_id] * (NODE_W + 30),
                y=10 + row * ROW_H,
            )
        )
    vma_x = 10 + (max(depth.values(), default=0) + 1) * (NODE_W + 30) + 40
    vma_nodes = []
    for row, v in enumerate(
        v
        for name in sorted(state.processes, key=lambda p: state.processes[p].pid)
        for v in state.mm_vmas(name)
    ):
        vma_nodes.append(
            VmaNode(
                id=v.id, process=v.mm, label=f"vma#{v.id} ({v.mm})", x=vma_x, y=10 + row * ROW_H
            )
        )
    at = {n.id: n for n in nodes}
    vma_at = {n.id: n for n in vma_nodes}
    edges = []
    for n in nodes:
        if n.parent != n.id and n.parent in at:
            p = at[n.parent]
            edges.append(
                Edge(
                    kind="parent",
                    label=f"anon_vma#{n.id} parent anon_vma#{p.id}",
                    path=_curve(p.x + NODE_W / 2, p.y + NODE_H, n.x, n.y + NODE_H / 2),
                )
            )
        for vma_id in n.chains:
            if vma_id in vma_at:
                t = vma_at[vma_id]
                edges.append(
                    Edge(
                        kind="chain",
                        label=f"anon_vma#{n.id} chains vma#{vma_id}",
                        path=_curve(n.x + NODE_W, n.y + NODE_H / 2, t.x, t.y + NODE_H / 2),
                    )
                )
    rows = max(len(nodes), len(vma_nodes), 1)
    return AnonGraph(
        width=int(vma_x + NODE_W + 20),
        height=20 + rows * ROW_H,
        nodes=nodes,
        vmas=vma_nodes,
        edges=edges,
    )


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (x1 + x2) / 2
    return f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"


# --- the folio table -----------------------------------------------------------


def folio_table(state: State, changes: Changes, cap: int = FOLIO_ROW_CAP) -> FolioTable:
    """One row per populated page, in process and address order, at most `cap` rows."""
    rows: list[FolioRow] = []
    total = 0
    for name in sorted(state.processes, key=lambda p: state.processes[p].pid):
        mm = state.processes[name]
        total += len(mm.pagetable)
        if len(rows) >= cap:
            continue
        for v in state.mm_vmas(name):
            lo, hi = v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT
            for vpn, pte in mm.pagetable.items(lo, hi):
                if len(rows) >= cap:
                    break
                rows.append(
                    _folio_row(state, name, v, vpn, pte.kind, pte.folio, pte.page, pte.pmd, changes)
                )
    return FolioTable(rows=rows, total=total, cap=cap)


def _folio_row(
    state: State,
    process: str,
    vma: VMA,
    vpn: int,
    kind: str,
    folio_id: int,
    page: int,
    pmd: bool,
    changes: Changes,
) -> FolioRow:
    address = vpn * PAGE_SIZE
    linear = linear_page_index(vma, address)
    folio = state.folios.get(folio_id) if kind != "swap" and folio_id != ZERO_PAGE else None
    if folio is None:
        return FolioRow(
            process=process,
            address=address,
            vma=vma.id,
            kind="zero page" if kind == "present" else kind,
            folio=folio_id,
            order=0,
            page=page,
            index=None,
            mapping=None,
            mapcount=None,
            pins=0,
            exclusive=None,
            linear=linear,
            index_ok=None,
            change="",
        )
    index = folio.index + page
    mapcount = folio.mapcount[page] + (folio.entire_mapcount if pmd else 0)
    return FolioRow(
        process=process,
        address=address,
        vma=vma.id,
        kind=kind + (" (PMD)" if pmd else ""),
        folio=folio.id,
        order=folio.order,
        page=page,
        index=index,
        mapping=folio.mapping,
        mapcount=mapcount,
        pins=folio.pincount,
        exclusive=folio.anon_exclusive[page],
        linear=linear,
        index_ok=rmap_check(state, vma, address, page, folio).index_matches,
        change=changes.of(f"folio:{folio.id}"),
    )


# --- the source listing ------------------------------------------------------------


def source_lines(
    source: str, run: Run | None, current: int | None, error: tuple[int, int] | None = None
) -> list[SourceLine]:
    """The scenario's lines, each statement's lines marked, the current one flagged."""
    lines = source.splitlines() or [""]
    owner: dict[int, int] = {}
    if run is not None:
        starts = [st.outcome.statement.line for st in run.statements]
        for i, line in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else len(lines) + 1
            for n in range(line, end):
                text = lines[n - 1].strip() if n <= len(lines) else ""
                if n == line or (text and not text.startswith(("//", "/*", "*"))):
                    owner[n] = i
                else:
                    break
    out = []
    for n, text in enumerate(lines, start=1):
        s = owner.get(n)
        first = s is not None and run is not None and run.statements[s].outcome.statement.line == n
        out.append(
            SourceLine(
                number=n,
                text=text,
                statement=s,
                result=run.statements[s].outcome.result.result
                if first and run and s is not None
                else None,
                first_step=run.statements[s].first if first and run and s is not None else None,
                current=s is not None and s == current,
                error_col=error[1] if error and error[0] == n else None,
            )
        )
    return out


# --- the compare view --------------------------------------------------------------


class CompareSide(BaseModel):
    variant: str
    description: str
    statement: StatementView
    counts: Counts
    changes: Changes
    violations: list[ViolationView]
    maps: dict[str, list[tuple[str, bool]]]
    address_map: AddressMap
    folios: list[tuple[FolioRow, bool]]
    folio_total: int


class CompareView(BaseModel):
    """Two runs of one scenario after the same statement; `differences` names what differs."""

    index: int
    statements: int
    a: CompareSide
    b: CompareSide
    differences: list[str]


COMPARE_FOLIO_CAP = 128


def compare_view(
    runs: tuple[Run, Run], variants: tuple[tuple[str, str], tuple[str, str]], index: int
) -> CompareView:
    """Both runs after statement `index`, each line and row flagged where the other differs."""
    states = [run.steps[run.statements[index].last - 1].state for run in runs]
    changes = [
        _union(run.steps[run.statements[index].first : run.statements[index].last]) for run in runs
    ]
    maps = [
        {name: [maps_line(st, v) for v in st.mm_vmas(name)] for name in st.processes}
        for st in states
    ]
    tables = [
        folio_table(st, ch, COMPARE_FOLIO_CAP) for st, ch in zip(states, changes, strict=True)
    ]
    keyed = [
        {
            (r.process, r.address): (r.kind, r.folio, r.index, r.mapping, r.mapcount, r.exclusive)
            for r in t.rows
        }
        for t in tables
    ]
    stmts = [statement_view(run, index) for run in runs]
    cnts = [counts(st) for st in states]
    differences = []
    if stmts[0].result != stmts[1].result:
        differences.append(f"result: {stmts[0].result} / {stmts[1].result}")
    for name in sorted(set(maps[0]) | set(maps[1])):
        if maps[0].get(name) != maps[1].get(name):
            differences.append(f"VMAs of {name}")
    for field in Counts.model_fields:
        if getattr(cnts[0], field) != getattr(cnts[1], field):
            differences.append(
                f"{field.replace('_', ' ')}: {getattr(cnts[0], field)} / {getattr(cnts[1], field)}"
            )
    if keyed[0] != keyed[1]:
        differences.append("pages and folios")
    sides = []
    for i in (0, 1):
        other = 1 - i
        sides.append(
            CompareSide(
                variant=variants[i][0],
                description=variants[i][1],
                statement=stmts[i],
                counts=cnts[i],
                changes=changes[i],
                violations=[ViolationView(**v) for v in invariant_violations(states[i])],
                maps={
                    name: [(line, line not in maps[other].get(name, [])) for line in lines]
                    for name, lines in maps[i].items()
                },
                address_map=address_map(states[i], changes[i]),
                folios=[
                    (
                        r,
                        keyed[other].get((r.process, r.address))
                        != keyed[i][(r.process, r.address)],
                    )
                    for r in tables[i].rows
                ],
                folio_total=tables[i].total,
            )
        )
    return CompareView(
        index=index,
        statements=min(len(r.statements) for r in runs),
        a=sides[0],
        b=sides[1],
        differences=differences,
    )
