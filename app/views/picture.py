"""The central picture: the rmap model of one snapshot, one column per page.

It draws what the kernel's review mails draw by hand. Per process, the
VMAs along a shared address axis (so a parent and its child line up),
each with vm_start, vm_pgoff, flags and anon_vma; under every page
column its page-table entry and its folio (id, order, index, coloured by
the anon_vma its mapping names); under that the rmap link, broken where
engine.invariants.rmap_check says a walk from the folio would not find the
page again, with the check's sentence beside it. Below all processes, the
anon_vma tree, its nodes placed under the VMAs they serve and chained to
them, so the eye follows folio -> anon_vma -> chain -> VMA -> address.

Long unmapped gaps and long runs of alike pages are one column each,
marked as such. Geometry is computed here; templates/_picture.svg only
draws it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from pydantic import BaseModel

from app.views.layout import (
    anon_vma_depths,
    cow_context_depths,
    processes_by_pid,
    rmap_colours,
)
from app.views.unfinished import UnfinishedView, unfinished_view
from engine.cow_context import remap_vmas, vma_offset
from engine.invariants import check, rmap_check
from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import VMA, CowContext, RemapRange, RmapModel, State, flag_names
from engine.pagetable import MIGRATION, SWAP, ZERO_PAGE, Pte
from engine.procfs import vma_perms
from engine.sim.simulation import Changes
from engine.sim.trace import Lock, ObjRef, Unfinished

Change = Literal["", "created", "changed"]
PteKind = Literal["none", "present", "swap", "migration", "zero", "pmd"]

PTE_CODE: dict[str, str] = {
    "none": "·",
    "present": "pte",
    "swap": "swp",
    "migration": "mig",
    "zero": "zero",
    "pmd": "pmd",
}
PTE_LEGEND: dict[str, str] = {
    "·": "no entry (pte_none)",
    "pte": "present PTE",
    "pmd": "PMD-mapped (huge)",
    "zero": "the shared zero page",
    "swp": "swap entry",
    "mig": "migration entry",
}


@dataclass(frozen=True)
class Geometry:
    """The sizes in which the two forms of the picture differ, in viewBox units
    (CSS pixels at 1:1)."""

    left: float
    """Room for the process names and row names."""
    page_w: float
    run_w: float
    gap_w: float
    vma_min_w: float
    """Room for a VMA's longest label line."""
    min_width: float
    run_after: int
    """A run of alike pages longer than this becomes first, run, last."""
    node_w: float
    node_h: float
    notes: bool
    """The broken links' sentences are drawn beside them (else the page lists them)."""


# The step page's picture: labels in full, each rmap note beside its columns.
FULL = Geometry(
    left=92,
    page_w=30,
    run_w=46,
    gap_w=34,
    vma_min_w=132,  # "start 0x7ffff7fdf000"
    min_width=900,  # an rmap note
    run_after=8,
    node_w=124,
    node_h=36,
    notes=True,
)
# The compare view's: five side by side at 1280 px, each about 240 px wide, with
# labels at their own size (short forms; the full ones are in the titles), the
# sentences of the rmap notes listed under the picture by the page.
COMPACT = Geometry(
    left=40,
    page_w=20,
    run_w=20,
    gap_w=14,
    vma_min_w=84,  # "vma#22 rw-p ≠", "7ffff7fdf000" (as /proc/PID/maps writes it)
    min_width=0,
    run_after=3,
    node_w=84,
    node_h=48,
    notes=False,
)
SAME_W = 14
MAX_COLUMNS = 96
MAX_NOTES = 6
FREED_H = 16
VMA_H = 70
PTE_H = 18
FOLIO_H = 86
RMAP_H = 20
NOTE_H = 28
MARK_LINE_H = 13
MARK_COLUMNS = 130
"""A Mark's comment is wrapped to lines of this many characters (10 px type)."""
LANE_GAP = 16
FOOT_H = 20
NODE_ROW_GAP = 22
REMAP_H = 30
COW_NODE_H = 48


class Column(BaseModel):
    """One column: a page, a run of alike pages drawn once, an unmapped gap, or
    (in the compare view) a stretch that is the same in every run compared."""

    kind: Literal["page", "run", "gap", "same"]
    start: int
    """The first address the column stands for."""
    pages: int
    x: float
    width: float


class VmaBox(BaseModel):
    id: int
    x: float
    width: float
    lines: list[str]
    title: str
    colour: int
    change: Change
    differs: bool = False
    """Not so in the first run compared (the compare view)."""


class Ghost(BaseModel):
    """Something the step freed, drawn dotted where it was."""

    label: str
    x: float
    width: float


class Cell(BaseModel):
    """What one column of one process maps."""

    column: int
    run: bool
    x: float
    width: float
    pte: PteKind
    code: str
    folio: int | None = None
    order: int = 0
    index: str = ""
    """folio->index + page, in hex; for a run, its first page's."""
    colour: int = -1
    change: Change = ""
    broken: bool = False
    locked: bool = False
    note: int | None = None
    differs: bool = False
    """A page here is not so in the first run compared (the compare view)."""
    title: str = ""


class FolioPage(BaseModel):
    """One page of a folio block: where its column's middle is, and its index."""

    dx: float
    """From the block's left edge."""
    index: str
    broken: bool
    run: bool


class FolioBlock(BaseModel):
    """A folio across the columns it spans in one process. It carries its own
    labels (id, each page's index), so the page can slide it as one object
    when a step moves it (app.css: motion)."""

    id: int
    key: str
    """Unique in its lane: `f<id>`, `f<id>-<n>` for a second block of the same folio."""
    order: int
    x: float
    width: float
    colour: int
    change: Change
    label: str
    pages: list[FolioPage]


class Note(BaseModel):
    """A broken rmap link: the check's sentence, numbered as its columns are;
    `mark` numbers its lane's Mark where the miss is the proposal's unfinished part."""

    number: int
    text: str
    detail: str
    locked: bool
    mark: int | None = None
    unfinished: UnfinishedView | None = None


class Mark(BaseModel):
    """ "Unfinished in the proposal": where the branch is unfinished, with its own
    comment, drawn once per lane under its notes (`lines`, wrapped)."""

    number: int
    unfinished: UnfinishedView
    lines: list[str]
    dy: float = 0
    """Its first line's y below the lane's notes_y."""


class LanePicture(BaseModel):
    process: str
    pid: int
    parent: str | None
    y: float
    freed: list[Ghost]
    vmas: list[VmaBox]
    cells: list[Cell]
    folios: list[FolioBlock]
    notes: list[Note]
    more_notes: int
    marks: list[Mark] = []

    @property
    def vma_y(self) -> float:
        return self.y + (FREED_H if self.freed else 0)

    @property
    def pte_y(self) -> float:
        return self.vma_y + VMA_H + 2

    @property
    def folio_y(self) -> float:
        return self.pte_y + PTE_H

    @property
    def rmap_y(self) -> float:
        return self.folio_y + FOLIO_H

    @property
    def notes_y(self) -> float:
        return self.rmap_y + RMAP_H


class Footprint(BaseModel):
    """A VMA again, above the anon_vma tree, where its chains end."""

    vma: int
    process: str
    x: float
    y: float
    width: float


NodeKind = Literal["anon_vma", "cow_context"]
EdgeKind = Literal["parent", "chain", "mm", "remap", "offset"]


class TreeNode(BaseModel):
    """An anon_vma, or (under cow_context) a COW context; `exited`: its mm is gone."""

    id: int
    kind: NodeKind = "anon_vma"
    root: bool
    exited: bool = False
    lines: list[str]
    title: str
    colour: int
    change: Change | Literal["freed"]
    x: float
    y: float


class RemapBox(BaseModel):
    """One entry of a COW context's remap_mt: a pgoff range and its offsets,
    under the addresses its first offset maps; `stale`: an offset no VMA maps."""

    key: str
    context: int
    x: float
    y: float
    lines: list[str]
    title: str
    stale: bool
    colour: int = 0


class TreeEdge(BaseModel):
    kind: EdgeKind
    key: str
    """The kernel objects it joins: unique in the picture, the same from step to step."""
    path: str
    label: str


class Picture(BaseModel):
    width: float
    height: float
    node_w: float
    node_h: float
    columns: list[Column]
    lanes: list[LanePicture]
    tree_y: float
    footprints: list[Footprint]
    nodes: list[TreeNode]
    edges: list[TreeEdge]
    remaps: list[RemapBox] = []
    remap_h: float = 0
    rmap_model: RmapModel = "anon_vma"
    hidden_columns: int
    """Columns past MAX_COLUMNS, not drawn."""
    summary: str
    """The text alternative: what the picture shows, in sentences."""
    notes_beside: bool
    """The rmap notes are drawn in the picture (else the page lists `notes()`)."""
    pte_legend: dict[str, str] = PTE_LEGEND

    def notes(self) -> list[tuple[str, Note]]:
        """Every lane's rmap notes, with the lane's process."""
        return [(lane.process, n) for lane in self.lanes for n in lane.notes]


@dataclass(frozen=True)
class Focus:
    """What the compare view wants of one run's picture: only the address ranges
    where its runs differ (the rest is "same" columns), the pages and VMAs that
    differ from the first run's marked, in the compact geometry."""

    keep: tuple[tuple[int, int], ...]
    """[lo, hi) addresses drawn; empty: every run is the same, draw everything."""
    pages: frozenset[tuple[str, int]] = frozenset()
    """(process, address) of the pages not so in the first run."""
    vmas: frozenset[int] = frozenset()
    """Ids of the VMAs not so in the first run."""


# --- the columns ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    """What one process has at one page: the inputs of its column's look."""

    vma: int | None
    pte: PteKind
    folio: int | None
    large: bool
    mapping: int | None
    broken: bool
    change: Change

    def alike(self, other: _Page) -> bool:
        """Two neighbouring pages draw alike: a run may stand for both."""
        return (
            self.vma == other.vma
            and self.pte == other.pte
            and self.mapping == other.mapping
            and self.broken == other.broken
            and self.change == other.change
            and self.large == other.large
            and (not self.large or self.folio == other.folio)
        )


def _pte_kind(pte: Pte | None) -> PteKind:
    if pte is None:
        return "none"
    if pte.kind == SWAP:
        return "swap"
    if pte.kind == MIGRATION:
        return "migration"
    if pte.folio == ZERO_PAGE:
        return "zero"
    return "pmd" if pte.pmd else "present"


def _vma_at(vmas: list[VMA], vpn: int) -> VMA | None:
    addr = vpn << PAGE_SHIFT
    for v in vmas:
        if v.vm_start <= addr < v.vm_end:
            return v
    return None


def _page(state: State, vmas: list[VMA], name: str, vpn: int, changes: Changes) -> _Page:
    vma = _vma_at(vmas, vpn)
    if vma is None:
        return _Page(None, "none", None, False, None, False, "")
    pte = state.processes[name].pagetable.get(vpn)
    kind = _pte_kind(pte)
    folio = state.folios.get(pte.folio) if pte is not None and kind != "swap" else None
    if pte is None or folio is None or kind == "zero":
        return _Page(vma.id, kind, None, False, None, False, "")
    result = rmap_check(state, vma, vpn << PAGE_SHIFT, pte.page, folio)
    return _Page(
        vma.id,
        kind,
        folio.id,
        folio.order > 0,
        folio.mapping,
        result.miss is not None,
        changes.of(ObjRef("folio", folio.id)),
    )


def _columns(
    states: Iterable[State], state: State, changes: Changes, geo: Geometry
) -> list[Column]:
    """The columns: boundaries of every VMA of `states`, every populated page of
    `state`, alike pages merged into runs, unmapped stretches into gaps."""
    all_states = list(states)
    ranges = [
        (v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT)
        for st in all_states
        for v in st.vmas.values()
    ]
    if not ranges:
        return []
    points = {p for r in ranges for p in r}
    names = processes_by_pid(state)
    vmas = {name: state.mm_vmas(name) for name in names}
    for name in names:
        for v in vmas[name]:
            for vpn, _ in state.processes[name].pagetable.items(
                v.vm_start >> PAGE_SHIFT, v.vm_end >> PAGE_SHIFT
            ):
                points.update((vpn, vpn + 1))
    bounds = sorted(points)
    columns: list[Column] = []
    run: list[int] = []  # [first vpn, end vpn) of alike pages not yet placed
    run_look: tuple[_Page, ...] = ()

    def page(vpn: int) -> Column:
        return Column(kind="page", start=vpn << PAGE_SHIFT, pages=1, x=0, width=geo.page_w)

    def flush() -> None:
        if not run:
            return
        lo, hi = run
        if hi - lo > geo.run_after:
            columns.append(page(lo))
            columns.append(
                Column(
                    kind="run",
                    start=(lo + 1) << PAGE_SHIFT,
                    pages=hi - lo - 2,
                    x=0,
                    width=geo.run_w,
                )
            )
            columns.append(page(hi - 1))
        else:
            columns.extend(page(vpn) for vpn in range(lo, hi))
        run.clear()

    for lo, hi in zip(bounds, bounds[1:], strict=False):
        if not any(s <= lo and hi <= e for s, e in ranges):
            flush()
            columns.append(
                Column(kind="gap", start=lo << PAGE_SHIFT, pages=hi - lo, x=0, width=geo.gap_w)
            )
            continue
        # [lo, hi) looks alike throughout: one look per process.
        look = tuple(_page(state, vmas[n], n, lo, changes) for n in names)
        if run and all(a.alike(b) for a, b in zip(run_look, look, strict=True)):
            run[1] = hi
        else:
            flush()
            run.extend((lo, hi))
            run_look = look
    flush()
    return columns


def _collapse(columns: list[Column], keep: tuple[tuple[int, int], ...]) -> list[Column]:
    """Each stretch of columns outside every `keep` range becomes one "same" column."""
    out: list[Column] = []
    for c in columns:
        end = c.start + (c.pages << PAGE_SHIFT)
        if any(lo < end and c.start < hi for lo, hi in keep):
            out.append(c)
        elif out and out[-1].kind == "same":
            out[-1].pages += c.pages
        else:
            out.append(Column(kind="same", start=c.start, pages=c.pages, x=0, width=SAME_W))
    return out


def _drawn(columns: list[Column], lo: int, hi: int) -> list[Column]:
    """The columns of addresses [lo, hi) that draw what is there (not a "same" one)."""
    return [c for c in columns if lo <= c.start < hi and c.kind != "same"]


def _place(columns: list[Column], boxes: Iterable[tuple[int, int]], geo: Geometry) -> None:
    """x of every column; widen the columns of a VMA too narrow for its label."""
    for lo, hi in boxes:
        inside = _drawn(columns, lo, hi)
        have = sum(c.width for c in inside)
        if inside and have < geo.vma_min_w:
            extra = (geo.vma_min_w - have) / len(inside)
            for c in inside:
                c.width += extra
    x = float(geo.left)
    for c in columns:
        c.x = round(x, 1)
        c.width = round(c.width, 1)
        x += c.width


def _span(columns: list[Column], lo: int, hi: int) -> tuple[float, float] | None:
    """x and width of the columns within addresses [lo, hi)."""
    inside = _drawn(columns, lo, hi)
    if not inside:
        return None
    return inside[0].x, inside[-1].x + inside[-1].width - inside[0].x


# --- one process ---------------------------------------------------------------------


def _vma_rmap(v: VMA, model: RmapModel, compact: bool) -> tuple[str, str]:
    """A VMA's rmap line in its box, and its rmap part of the title. Under
    cow_context, vma->anon_vma is only the "faulted" flag (the branch's
    DUMMY_ANON_VMA, held as the mm's context id) and what places the VMA in
    the remap tree is its offset, (vm_start >> PAGE_SHIFT) - vm_pgoff."""
    if model == "cow_context":
        offset = vma_offset(v)
        faulted = v.anon_vma is not None
        if compact:
            line = f"off {offset:+#x}" if faulted else "unfaulted"
        else:
            line = f"{'faulted' if faulted else 'unfaulted'}, off {offset:+#x}"
        title = (
            f"anon_vma {'DUMMY_ANON_VMA (faulted)' if faulted else 'NULL (not faulted)'},"
            f" offset {offset:+#x} pages"
            + (f", its mm's cow_context#{v.anon_vma}" if faulted else "")
        )
        return line, title
    if v.anon_vma is None:
        line = "no anon_vma"
    else:
        line = f"av#{v.anon_vma}" if compact else f"anon_vma #{v.anon_vma}"
    title = (
        f"anon_vma {('#' + str(v.anon_vma)) if v.anon_vma is not None else 'none'},"
        f" chained to {', '.join(f'anon_vma#{a}' for a in v.avc) or 'nothing'}"
    )
    return line, title


def _vma_box(
    v: VMA,
    x: float,
    width: float,
    colour: int,
    change: Change,
    focus: Focus | None,
    model: RmapModel,
) -> VmaBox:
    flags = flag_names(v.vm_flags)
    rmap_line, rmap_title = _vma_rmap(v, model, focus is not None)
    perms = vma_perms(v)
    extra = [
        f
        for f in flags
        if f not in {"read", "write", "exec", "mayread", "maywrite", "mayexec", "mayshare"}
    ]
    differs = focus is not None and v.id in focus.vmas
    if focus is None:
        mark = {"created": " +new", "changed": " ~changed", "": ""}[change]
        lines = [
            f"vma#{v.id} {perms}{mark}",
            f"start {v.vm_start:#x}",
            f"pgoff {v.vm_pgoff:#x}",
            rmap_line,
        ]
        if extra:
            lines.append(" ".join(extra))
    else:
        # what the step created or changed shows in the bar's outline alone
        lines = [
            f"vma#{v.id} {perms}" + (" ≠" if differs else ""),
            f"{v.vm_start:x}",
            f"pg {v.vm_pgoff:x}",
            rmap_line,
        ]
    title = (
        f"vma#{v.id}: {v.vm_start:#x}-{v.vm_end:#x}, {v.pages} pages, vm_pgoff {v.vm_pgoff:#x},"
        f" {perms} [{' '.join(flags)}], {rmap_title}"
        + (f"; {change} by this step" if change else "")
        + ("; not so in the first run compared" if differs else "")
    )
    return VmaBox(
        id=v.id,
        x=x,
        width=width,
        lines=lines,
        title=title,
        colour=colour,
        change=change,
        differs=differs,
    )


def _lane(
    state: State,
    before: State | None,
    name: str,
    y: float,
    columns: list[Column],
    changes: Changes,
    colours: dict[int, int],
    locked: set[tuple[ObjRef, ...]],
    unfinished: dict[tuple[ObjRef, ...], Unfinished],
    focus: Focus | None,
) -> LanePicture:
    mm = state.processes[name]
    vmas = state.mm_vmas(name)
    boxes = []
    for v in vmas:
        span = _span(columns, v.vm_start, v.vm_end)
        if span is not None:
            colour = -1 if v.anon_vma is None else colours.get(v.anon_vma, 0)
            change = changes.of(ObjRef("vma", v.id))
            boxes.append(_vma_box(v, span[0], span[1], colour, change, focus, state.rmap_model))
    freed = []
    if before is not None and name in before.processes:
        for v in before.mm_vmas(name):
            if v.id not in state.vmas and (span := _span(columns, v.vm_start, v.vm_end)):
                freed.append(Ghost(label=f"− vma#{v.id} freed", x=span[0], width=span[1]))
    cells: list[Cell] = []
    notes: list[Note] = []
    marks: dict[Unfinished, int] = {}
    more = 0
    for i, col in enumerate(columns):
        if col.kind in ("gap", "same"):
            continue
        vpn = col.start >> PAGE_SHIFT
        vma = _vma_at(vmas, vpn)
        if vma is None:
            continue
        pte = mm.pagetable.get(vpn)
        kind = _pte_kind(pte)
        cell = Cell(
            column=i, run=col.kind == "run", x=col.x, width=col.width, pte=kind, code=PTE_CODE[kind]
        )
        where = f"{col.start:#x}" + (
            f" and the {col.pages} pages after it" if col.kind == "run" else ""
        )
        cell.title = f"{name} {where}: {PTE_LEGEND[cell.code]}"
        folio = (
            state.folios.get(pte.folio)
            if pte is not None and kind not in ("swap", "zero")
            else None
        )
        if pte is not None and folio is not None:
            result = rmap_check(state, vma, col.start, pte.page, folio)
            cell.folio = folio.id
            cell.order = folio.order
            cell.index = f"{result.index:#x}"
            cell.colour = -1 if folio.mapping is None else colours.get(folio.mapping, 0)
            cell.change = changes.of(ObjRef("folio", folio.id))
            cell.title += (
                f", folio#{folio.id} order {folio.order} page {pte.page}, index {result.index:#x}"
                f" (linear_page_index {result.expected:#x}), mapping "
                + _mapping(state, folio.mapping)
            )
            if result.miss is not None:
                cell.broken = True
                objects = (ObjRef("folio", folio.id), ObjRef("vma", vma.id))
                cell.locked = objects in locked
                sentence = f"folio#{folio.id} at {col.start:#x}: {result.miss.value}"
                same = "=" if result.index_matches else "≠"
                detail = (
                    f"index {result.index:#x} {same} linear_page_index {result.expected:#x};"
                    f" mapping {_mapping(state, folio.mapping)}"
                )
                if cell.locked:
                    detail += " · behind a write lock: a racing rmap walker waits"
                todo = unfinished.get(objects)
                mark = None
                if todo is not None:
                    mark = marks.setdefault(todo, len(marks) + 1)
                    detail += f" · ⚑{mark} unfinished in the proposal"
                    cell.title += f" (unfinished in the proposal: {todo.where})"
                if len(notes) < MAX_NOTES:
                    notes.append(
                        Note(
                            number=len(notes) + 1,
                            text=sentence,
                            detail=detail,
                            locked=cell.locked,
                            mark=mark,
                            unfinished=unfinished_view(todo),
                        )
                    )
                    cell.note = len(notes)
                else:
                    more += 1
                cell.title += ". rmap misses it: " + result.miss.value
            else:
                cell.title += ". rmap finds it"
        elif kind == "swap":
            cell.title += " (the folio is not in memory)"
        if focus is not None:
            end = col.start + (col.pages << PAGE_SHIFT)
            cell.differs = any(p == name and col.start <= a < end for p, a in focus.pages)
            if cell.differs:
                cell.title += "; not so in the first run compared"
        cells.append(cell)
    return LanePicture(
        process=name,
        pid=mm.pid,
        parent=mm.parent,
        y=y,
        freed=freed,
        vmas=boxes,
        cells=cells,
        folios=_folio_blocks(cells),
        notes=notes,
        more_notes=more,
        marks=_marks(marks, (len(notes) + (1 if more else 0)) * NOTE_H),
    )


def _mapping(state: State, ident: int | None) -> str:
    """What folio->mapping names, in the model's terms."""
    if ident is None:
        return "none"
    return f"{'cow_context' if state.rmap_model == 'cow_context' else 'anon_vma'}#{ident}"


def _marks(marks: dict[Unfinished, int], dy: float) -> list[Mark]:
    """The lane's marks, their lines wrapped, one under the other from `dy`."""
    out = []
    for where, number in marks.items():
        comment = f'"{where.comment}"' if where.comment else "(the branch has no comment there)"
        lines = [
            f"⚑{number} unfinished in the proposal, {where.where}:",
            *textwrap.wrap(comment, MARK_COLUMNS),
        ]
        out.append(
            Mark(number=number, unfinished=UnfinishedView(**where._asdict()), lines=lines, dy=dy)
        )
        dy += len(lines) * MARK_LINE_H
    return out


def _folio_blocks(cells: list[Cell]) -> list[FolioBlock]:
    """Consecutive columns of one folio are one block (a large folio spans them)."""
    blocks: list[FolioBlock] = []
    seen: dict[int, int] = {}
    last: Cell | None = None
    for cell in cells:
        if cell.folio is None:
            last = None
            continue
        b = blocks[-1] if blocks else None
        if b is None or last is None or last.folio != cell.folio or cell.column != last.column + 1:
            order = f" order {cell.order}" if cell.order else ""
            n = seen[cell.folio] = seen.get(cell.folio, 0) + 1
            b = FolioBlock(
                id=cell.folio,
                key=f"f{cell.folio}" + (f"-{n}" if n > 1 else ""),
                order=cell.order,
                x=cell.x,
                width=cell.width,
                colour=cell.colour,
                change=cell.change,
                label=f"folio#{cell.folio}{order}",
                pages=[],
            )
            blocks.append(b)
        b.width = round(cell.x + cell.width - b.x, 1)
        b.pages.append(
            FolioPage(
                dx=round(cell.x + cell.width / 2 - b.x, 1),
                index=cell.index,
                broken=cell.broken,
                run=cell.run,
            )
        )
        last = cell
    return blocks


def _lane_height(lane: LanePicture, geo: Geometry) -> float:
    if not geo.notes:
        return lane.notes_y - lane.y + LANE_GAP
    notes = len(lane.notes) + (1 if lane.more_notes else 0)
    marks = sum(len(m.lines) for m in lane.marks)
    return lane.notes_y - lane.y + notes * NOTE_H + marks * MARK_LINE_H + LANE_GAP


# --- the anon_vma tree ---------------------------------------------------------------


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (y1 + y2) / 2
    return f"M{x1:.0f},{y1:.0f} C{x1:.0f},{mid:.0f} {x2:.0f},{mid:.0f} {x2:.0f},{y2:.0f}"


class Tree(NamedTuple):
    footprints: list[Footprint]
    nodes: list[TreeNode]
    edges: list[TreeEdge]
    remaps: list[RemapBox]
    height: float
    right: float
    """The rightmost x drawn."""


def _footprints(state: State, columns: list[Column], y: float) -> tuple[list[Footprint], float]:
    """Every VMA again, one row per process, from `y`; and the y under them."""
    footprints: list[Footprint] = []
    for name in processes_by_pid(state):
        for v in state.mm_vmas(name):
            span = _span(columns, v.vm_start, v.vm_end)
            if span is not None:
                footprints.append(Footprint(vma=v.id, process=name, x=span[0], y=y, width=span[1]))
        y += FOOT_H
    return footprints, y


def _row_up(
    rows: dict[int, list[tuple[float, TreeNode]]], left: float, node_w: float
) -> tuple[list[TreeNode], float]:
    """Each row's nodes left to right, each at its wanted x or right of its left
    neighbour; and the rightmost x."""
    nodes: list[TreeNode] = []
    right = 0.0
    for row in rows.values():
        x = left
        for want, node in sorted(row, key=lambda p: (p[0], p[1].id)):
            x = max(x, want)
            node.x = round(x, 1)
            nodes.append(node)
            x += node_w + 10
        right = max(right, x)
    return nodes, right


class _Up(NamedTuple):
    """A link from a box up to a VMA's footprint."""

    kind: EdgeKind
    key: str
    label: str
    source: str
    """The box it leaves (its ends are spread over the box's width)."""
    x: float
    y: float
    width: float
    vma: int


def _fanned(links: list[_Up], at_vma: dict[int, Footprint]) -> list[TreeEdge]:
    """The links as curves, each box's and each footprint's ends spread over
    its width in the order of the other ends, so no two links share an end."""
    ends: dict[int, list[str]] = {}  # footprint -> the boxes linked to it, left to right
    for link in sorted(links, key=lambda u: u.x):
        ends.setdefault(link.vma, []).append(link.source)
    starts: dict[str, list[int]] = {}
    for link in sorted(links, key=lambda u: at_vma[u.vma].x):
        starts.setdefault(link.source, []).append(link.vma)
    edges = []
    for link in links:
        f = at_vma[link.vma]
        out, into = starts[link.source], ends[link.vma]
        x1 = link.x + link.width * (out.index(link.vma) + 1) / (len(out) + 1)
        x2 = f.x + f.width * (into.index(link.source) + 1) / (len(into) + 1)
        edges.append(
            TreeEdge(
                kind=link.kind,
                key=link.key,
                label=link.label,
                path=_curve(x1, link.y, x2, f.y + FOOT_H - 4),
            )
        )
    return edges


def _parent_edges(
    at_node: dict[int, TreeNode],
    parents: dict[int, int | None],
    geo: Geometry,
    key: str,
    says: Callable[[int, int], str],
) -> list[TreeEdge]:
    """An edge from each drawn node's parent down to it."""
    edges = []
    for n in at_node.values():
        parent = parents.get(n.id)
        if parent is not None and parent in at_node:
            p = at_node[parent]
            edges.append(
                TreeEdge(
                    kind="parent",
                    key=f"{key}-{n.id}-{p.id}",
                    label=says(n.id, p.id),
                    path=_curve(p.x + geo.node_w / 2, p.y + geo.node_h, n.x + geo.node_w / 4, n.y),
                )
            )
    return edges


def _freed_node(ident: int, kind: NodeKind, y: float) -> TreeNode:
    return TreeNode(
        id=ident,
        kind=kind,
        root=False,
        lines=[f"− {kind}#{ident}", "freed"],
        title=f"{kind}#{ident}: freed by this step",
        colour=-1,
        change="freed",
        x=0,
        y=y,
    )


def _tree(
    state: State,
    before: State | None,
    columns: list[Column],
    y: float,
    changes: Changes,
    colours: dict[int, int],
    geo: Geometry,
) -> Tree:
    """Footprints of the VMAs, anon_vmas by depth under the VMAs they serve, the edges."""
    left, node_w, node_h = geo.left, geo.node_w, geo.node_h
    node_row = node_h + NODE_ROW_GAP
    footprints, fy = _footprints(state, columns, y)
    at_vma = {f.vma: f for f in footprints}
    avs = state.anon_vmas
    depth = anon_vma_depths(state)
    freed = [
        av for av in (before.anon_vmas.values() if before is not None else ()) if av.id not in avs
    ]
    rows: dict[int, list[tuple[float, TreeNode]]] = {}
    top = fy + 28
    for av in avs.values():
        users = [
            at_vma[v].x + at_vma[v].width / 2 for v in at_vma if state.vmas[v].anon_vma == av.id
        ]
        users = users or [at_vma[v].x + at_vma[v].width / 2 for v in av.chains if v in at_vma]
        want = sum(users) / len(users) - node_w / 2 if users else left
        change = changes.of(ObjRef("anon_vma", av.id))
        root = " root" if av.root == av.id else ""
        if geo.notes:
            mark = {"created": " +new", "changed": " ~", "": ""}[change]
            lines = [
                f"anon_vma#{av.id}{root}{mark}",
                f"ref {av.refcount} kids {av.num_children} act {av.num_active_vmas}",
            ]
        else:
            mark = {"created": " +", "changed": " ~", "": ""}[change]
            lines = [
                f"av#{av.id}{root}{mark}",
                f"ref {av.refcount} kids {av.num_children}",
                f"active {av.num_active_vmas}",
            ]
        node = TreeNode(
            id=av.id,
            root=av.root == av.id,
            lines=lines,
            title=(
                f"anon_vma#{av.id}: root anon_vma#{av.root}, parent anon_vma#{av.parent},"
                f" refcount {av.refcount}, num_children {av.num_children},"
                f" num_active_vmas {av.num_active_vmas}, chained to "
                + (", ".join(f"vma#{v}" for v in sorted(av.chains)) or "no VMA")
                + (f"; {change} by this step" if change else "")
            ),
            colour=colours.get(av.id, 0),
            change=change,
            x=0,
            y=top + depth[av.id] * node_row,
        )
        want += depth[av.id] * (node_w / 2 + 12)  # a child beside its parent: chains pass clear
        rows.setdefault(depth[av.id], []).append((max(float(left), want), node))
    last_row = max(rows, default=-1) + 1
    for av in freed:
        rows.setdefault(last_row, []).append(
            (float(left), _freed_node(av.id, "anon_vma", top + last_row * node_row))
        )
    nodes, right = _row_up(rows, float(left), node_w)
    at_node = {n.id: n for n in nodes if n.change != "freed"}
    edges = _parent_edges(
        at_node,
        {a.id: None if a.parent == a.id else a.parent for a in avs.values()},
        geo,
        "parent",
        lambda n, p: f"anon_vma#{n}'s parent is anon_vma#{p}",
    )
    edges += _fanned(
        [
            _Up(
                "chain",
                f"chain-{n.id}-{vid}",
                f"anon_vma_chain: anon_vma#{n.id} to vma#{vid}",
                f"av{n.id}",
                n.x,
                n.y,
                node_w,
                vid,
            )
            for n in at_node.values()
            for vid in sorted(avs[n.id].chains)
            if vid in at_vma
        ],
        at_vma,
    )
    height = top - y + last_row * node_row + (node_row if freed else 0) + 10
    return Tree(footprints, nodes, edges, [], height, right)


def _remap_box(
    state: State, ctx: CowContext, entry: RemapRange, columns: list[Column], geo: Geometry
) -> tuple[RemapBox, list[tuple[int, list[VMA]]]]:
    """One remap_mt entry of a context, wanting to sit under the addresses its
    first offset maps its pgoffs at; and each offset with the VMAs it finds."""
    found = [(o, remap_vmas(state, ctx, entry, o)) for o in entry.offsets]
    span = None
    for offset in entry.offsets:
        lo, hi = (entry.first + offset) << PAGE_SHIFT, (entry.last + 1 + offset) << PAGE_SHIFT
        if (span := _span(columns, lo, hi)) is not None:
            break
    offsets = [f"{o:+#x}" + (" stale" if not vmas else "") for o, vmas in found]
    kind = f"a struct dynarray, cap {entry.cap}" if entry.cap else "one offset inline (simple)"
    title = (
        f"cow_context#{ctx.id}'s remap_mt entry: pgoffs {entry.first:#x}-{entry.last:#x},"
        f" {kind}; "
        + "; ".join(
            f"offset {o:+#x}: "
            + (", ".join(f"vma#{v.id}" for v in vmas) if vmas else "no VMA maps it (stale)")
            for o, vmas in found
        )
    )
    if geo.notes:
        lines = [f"remap {entry.first:x}-{entry.last:x}", "off " + ", ".join(offsets)]
    else:
        lines = [f"{entry.first:x}-{entry.last:x}", ", ".join(offsets)]
    box = RemapBox(
        key=f"remap{ctx.id}-{entry.first:x}",
        context=ctx.id,
        x=span[0] if span is not None else geo.left,
        y=0,
        lines=lines,
        title=title,
        stale=any(not vmas for _, vmas in found),
    )
    return box, found


def _cow_tree(
    state: State,
    before: State | None,
    columns: list[Column],
    y: float,
    changes: Changes,
    colours: dict[int, int],
    geo: Geometry,
) -> Tree:
    """Under cow_context: footprints of the VMAs; under them the remap_mt
    entries, each below the addresses it records; then the contexts by depth
    in the fork tree, each under its mm's VMAs, an exited one marked. Edges:
    fork tree (parent), context to its mm's faulted VMAs at offset 0 (what
    the walk's first lookup finds), context to its entries, entry to the
    VMAs at its offsets."""
    left, node_w, node_h = float(geo.left), geo.node_w, geo.node_h
    node_row = node_h + NODE_ROW_GAP
    footprints, fy = _footprints(state, columns, y)
    at_vma = {f.vma: f for f in footprints}
    contexts = state.cow_contexts
    remaps: list[RemapBox] = []
    found: dict[str, list[tuple[int, list[VMA]]]] = {}
    remap_y = fy + 14
    for ctx in sorted(contexts.values(), key=lambda c: c.id):
        for entry in ctx.remaps:
            box, found[box.key] = _remap_box(state, ctx, entry, columns, geo)
            box.colour = colours.get(ctx.id, 0)
            remaps.append(box)
    x = left
    for box in sorted(remaps, key=lambda b: (b.x, b.key)):
        box.x, box.y = round(max(x, box.x), 1), remap_y
        x = box.x + node_w + 8
    right = x
    top = remap_y + (REMAP_H + 28 if remaps else 14)
    depth = cow_context_depths(state)
    rows: dict[int, list[tuple[float, TreeNode]]] = {}
    wants: dict[int, float] = {}
    for ctx in sorted(contexts.values(), key=lambda c: (depth[c.id], c.id)):
        users = [
            f.x + f.width / 2 for f in footprints if ctx.mm is not None and f.process == ctx.mm
        ]
        if users:
            want = sum(users) / len(users) - node_w / 2
        else:
            want = wants.get(ctx.parent, left) if ctx.parent is not None else left
        want += depth[ctx.id] * (node_w / 2 + 12)  # a child beside its parent
        wants[ctx.id] = want
        change = changes.of(ObjRef("cow_context", ctx.id))
        process = state.processes.get(ctx.mm) if ctx.mm is not None else None
        unlinked = process is not None and process.parent is not None and ctx.parent is None
        state_line = "exited: mm NULL" if ctx.mm is None else ("unlinked" if unlinked else "")
        if geo.notes:
            mark = {"created": " +new", "changed": " ~", "": ""}[change]
            lines = [f"cow_context#{ctx.id}{mark}", f"mm {ctx.mm or '-'} · ref {ctx.refcnt}"]
        else:
            mark = {"created": " +", "changed": " ~", "": ""}[change]
            lines = [f"ctx#{ctx.id}{mark}", f"{ctx.mm or '-'} ref {ctx.refcnt}"]
        if state_line:
            lines.append(state_line if geo.notes else state_line.split(":")[0])
        node = TreeNode(
            id=ctx.id,
            kind="cow_context",
            root=ctx.parent is None,
            exited=ctx.mm is None,
            lines=lines,
            title=(
                f"cow_context#{ctx.id}: "
                + (
                    f"of {ctx.mm}"
                    if ctx.mm
                    else "its mm exited: kept while children or folios hold it"
                )
                + f", parent {'cow_context#' + str(ctx.parent) if ctx.parent else 'none'},"
                f" refcnt {ctx.refcnt} (the mm, each child, each folio), children "
                + (", ".join(f"cow_context#{c}" for c in ctx.children) or "none")
                + f", {len(ctx.remaps)} remap entries"
                + (
                    "; not in the fork tree yet: dup_cow_context() links it after dup_mmap()'s loop"
                    if unlinked
                    else ""
                )
                + (f"; {change} by this step" if change else "")
            ),
            colour=colours.get(ctx.id, 0),
            change=change,
            x=0,
            y=top + depth[ctx.id] * node_row,
        )
        rows.setdefault(depth[ctx.id], []).append((max(left, want), node))
    last_row = max(rows, default=-1) + 1
    freed = [
        c
        for c in (before.cow_contexts.values() if before is not None else ())
        if c.id not in contexts
    ]
    for ctx in freed:
        rows.setdefault(last_row, []).append(
            (left, _freed_node(ctx.id, "cow_context", top + last_row * node_row))
        )
    nodes, node_right = _row_up(rows, left, node_w)
    at_node = {n.id: n for n in nodes if n.change != "freed"}
    edges = _parent_edges(
        at_node,
        {c.id: c.parent for c in contexts.values()},
        geo,
        "fork",
        lambda n, p: f"cow_context#{n} was forked from cow_context#{p}",
    )
    for box in remaps:
        n = at_node[box.context]
        edges.append(
            TreeEdge(
                kind="remap",
                key=f"remap-{box.key}",
                label=f"cow_context#{box.context}'s remap_mt holds pgoffs {box.lines[0]}",
                path=_curve(n.x + node_w * 3 / 4, n.y, box.x + node_w / 2, box.y + REMAP_H),
            )
        )
    ups = [
        _Up(
            "mm",
            f"mm-{n.id}-{v.id}",
            f"offset 0: cow_context#{n.id}'s walk looks up vma#{v.id} of {v.mm}",
            f"ctx{n.id}",
            n.x,
            n.y,
            node_w / 2,
            v.id,
        )
        for n in at_node.values()
        if (mm := contexts[n.id].mm) is not None and mm in state.processes
        for v in state.mm_vmas(mm)
        if v.anon_vma is not None and vma_offset(v) == 0 and v.id in at_vma
    ]
    ups += [
        _Up(
            "offset",
            f"off-{box.key}-{v.id}",
            f"offset {offset:+#x}: the remap entry {box.lines[0]} finds vma#{v.id}",
            box.key,
            box.x,
            box.y,
            node_w,
            v.id,
        )
        for box in remaps
        for offset, vmas in found[box.key]
        for v in vmas
        if v.id in at_vma
    ]
    edges += _fanned(ups, at_vma)
    height = top - y + last_row * node_row + (node_row if freed else 0) + 10
    return Tree(footprints, nodes, edges, remaps, height, max(right, node_right))


# --- the whole picture ---------------------------------------------------------------


def _summary(lanes: list[LanePicture], tree: Tree, hidden: int) -> str:
    parts = []
    for lane in lanes:
        vmas = "; ".join(box.title for box in lane.vmas) or "no VMA"
        broken = len(lane.notes) + lane.more_notes
        pages = sum(1 for c in lane.cells if c.folio is not None)
        parts.append(
            f"Process {lane.process} (pid {lane.pid}): {vmas}. {pages} columns map a folio"
            + (
                f"; {broken} rmap links are broken: "
                + " ".join(f"{n.text} ({n.detail})." for n in lane.notes)
                if broken
                else ""
            )
            + "."
        )
    parts.append(" ".join(n.title + "." for n in tree.nodes) or "No anon_vma.")
    parts += [b.title + "." for b in tree.remaps]
    if hidden:
        parts.append(f"{hidden} columns past the first {MAX_COLUMNS} are not drawn.")
    return " ".join(parts)


def picture(
    state: State,
    changes: Changes,
    before: State | None = None,
    held: tuple[Lock, ...] = (),
    focus: Focus | None = None,
) -> Picture:
    """The picture of `state`; `before` (the state the step started from) adds
    its VMA boundaries and the ghosts of what the step freed; `held` are the
    locks held, for "behind a write lock". With a `focus` (the compare view),
    the compact picture of what differs between the runs compared."""
    geo = FULL if focus is None else COMPACT
    if state.rmap_model == "cow_context":
        geo = replace(geo, node_h=COW_NODE_H)  # room for "exited" or "unlinked"
    states = [state] + ([before] if before is not None else [])
    columns = _columns(states, state, changes, geo)
    if focus is not None and focus.keep:
        columns = _collapse(columns, focus.keep)
    hidden = max(0, len(columns) - MAX_COLUMNS)
    columns = columns[:MAX_COLUMNS]
    _place(columns, ((v.vm_start, v.vm_end) for st in states for v in st.vmas.values()), geo)
    colours = rmap_colours(state)
    rmap = [v for v in check(state, held) if v.kind == "rmap"]
    locked = {v.objects for v in rmap if v.locked}
    unfinished = {v.objects: v.unfinished for v in rmap if v.unfinished is not None}
    lanes = []
    y = 8.0
    for name in processes_by_pid(state):
        lane = _lane(state, before, name, y, columns, changes, colours, locked, unfinished, focus)
        lanes.append(lane)
        y += _lane_height(lane, geo)
    draw_tree = _cow_tree if state.rmap_model == "cow_context" else _tree
    tree = draw_tree(state, before, columns, y + 18, changes, colours, geo)
    columns_right = columns[-1].x + columns[-1].width if columns else geo.left
    width = max(geo.min_width, columns_right + 8, tree.right)
    return Picture(
        width=round(width),
        height=round(y + 18 + tree.height),
        node_w=geo.node_w,
        node_h=geo.node_h,
        notes_beside=geo.notes,
        columns=columns,
        lanes=lanes,
        tree_y=y,
        footprints=tree.footprints,
        nodes=tree.nodes,
        edges=tree.edges,
        remaps=tree.remaps,
        remap_h=REMAP_H,
        rmap_model=state.rmap_model,
        hidden_columns=hidden,
        summary=_summary(lanes, tree, hidden),
    )
