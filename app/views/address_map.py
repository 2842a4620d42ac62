"""The address-space map: every process's VMAs as bars on one address axis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from app.views.layout import processes_by_pid, rmap_colours, vma_rmap_names
from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import State, flag_names
from engine.present.trace import rule_text
from engine.procfs import vma_perms
from engine.sim.simulation import Changes
from engine.sim.trace import Event, ObjRef
from engine.vma import explain_adjacent

# SVG geometry, in CSS pixels of the viewBox.
MAP_WIDTH = 960
MAP_LEFT = 70
MAP_RIGHT = 10
LANE_HEIGHT = 44
LANE_GAP = 34
GAP_WIDTH = 28
MIN_BAR = 10


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
    rmap: tuple[str, str]
    """What its anon_vma field says, short and long (app.views.layout.vma_rmap_names)."""
    avc: list[int]
    colour: int
    change: Literal["", "created", "changed"]
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


def compared_columns(events: Sequence[Event]) -> dict[int, dict[str, str]]:
    """Which VMA table cells a step's merge rules compared, and what they found.

    A merge decision names its candidate VMA and its rule (engine/vma.py);
    the cell of the attribute the rule looked at is highlighted.
    """
    found: dict[int, dict[str, str]] = {}
    for event in events:
        candidate, rule = event.candidate, event.rule
        if candidate is None or candidate.kind != "vma" or rule is None:
            continue
        values = dict(event.values)
        cells = found.setdefault(candidate.id, {})
        if "expected_pgoff" in values:
            cells["pgoff"] = f"expected {values['expected_pgoff']}, found {values['found_pgoff']}"
        if rule.check == "vm_flags":
            cells["flags"] = f"flags differ: {values.get('differ', '')}"
        if rule.function == "is_mergeable_anon_vma":
            cells["anon_vma"] = rule_text(rule)
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
    colours = rmap_colours(state)
    compared = compared_columns(events)
    lanes = []
    for n, name in enumerate(processes_by_pid(state)):
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
                    perms=vma_perms(v),
                    flags=flags,
                    anon_vma=v.anon_vma,
                    rmap=vma_rmap_names(v, state),
                    avc=list(v.avc),
                    colour=-1 if v.anon_vma is None else colours.get(v.anon_vma, 0),
                    change=changes.of(ObjRef("vma", v.id)),
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
