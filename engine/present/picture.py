"""The page picture of a process: one column per page, one letter per VMA.

Ours. It draws one process's address space the way the kernel's
tools/testing/vma tests draw it in their comments, so a kernel developer
can paste it into review mail. Under the VMA row, a `pte` row says what
each page maps and an `rmap` row says whether an rmap walk from the folio
would find the page again ('!' where folio->index no longer matches
linear_page_index(), the bug class the RELOCATE_ANON series is about).
Long runs and gaps are elided with `~`, and every elision is listed with
the pages it hides.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.invariants import RmapMiss, rmap_check
from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import VMA, Folio, RmapModel, State
from engine.pagetable import MIGRATION, PRESENT, SWAP, ZERO_PAGE, PageTable, Pte, PteRun
from engine.present.tables import (
    anon_vma_table,
    empty_table_summary,
    folio_summary,
    letter_names,
    vma_table,
)
from engine.present.text import WIDTH, fit

MARGIN = 6  # " vma  ", " pte  ", " rmap ": the row labels
COLUMNS = WIDTH - MARGIN
GAP = "."
ELIDED = "~"
MAX_LISTED = 8  # rmap misses and elisions listed per process before "... more"

PTE_KEY = {
    "*": "mapped once",
    "+": "mapped more than once (COW-shared)",
    "H": "PMD-mapped",
    "P": "pinned",
    "z": "zero page",
    "s": "swap entry",
    "m": "migration entry",
    "X": "folio missing",
}
RMAP_KEY = {
    ".": "rmap finds it",
    "!": "rmap misses it: index != linear_page_index",
    "?": "rmap misses it: folio's mapping does not chain the VMA",
}
COW_CONTEXT_RMAP_KEY = RMAP_KEY | {"?": "cow_context_walk misses it (why: below)"}


def process_order(state: State) -> list[str]:
    """main first, then the others by pid: Map iteration order is arbitrary."""
    return sorted(state.processes, key=lambda n: (n != "main", state.processes[n].pid, n))


def render_state(state: State, process: str | None = None) -> str:
    """The picture, legend and rmap check of one process (all when None),
    then the anon_vmas they reach."""
    names = [process] if process is not None else process_order(state)
    out: list[str] = []
    for name in names:
        out += process_block(state, name)
        out.append("")
    out += anon_vma_table(state, None if process is None else names)
    if process is None:
        out += folio_summary(state)
    out += empty_table_summary(state, names)
    return "\n".join(fit(out)).rstrip("\n")


@dataclass
class _Run:
    """Pages lo..hi-1 that draw alike: one VMA (or a gap), one pte and rmap symbol."""

    lo: int
    hi: int
    vma: str
    pte: str = " "
    rmap: str = " "

    def same(self, other: _Run) -> bool:
        return (self.vma, self.pte, self.rmap) == (other.vma, other.pte, other.rmap)


@dataclass(frozen=True)
class _Cell:
    """One column: a page, or an elision standing for many pages."""

    lo: int
    hi: int
    vma: str
    pte: str
    rmap: str

    @property
    def elided(self) -> bool:
        return self.hi - self.lo > 1


def process_block(state: State, process: str) -> list[str]:
    mm = state.processes[process]
    vmas = state.mm_vmas(process)
    if not vmas:
        return [f"{process} (pid {mm.pid}): no VMAs"]
    names = letter_names(state, process)
    base = vmas[0].vm_start >> PAGE_SHIFT
    runs, misses = _runs(state, process, vmas, names)
    cells = _cells(runs, COLUMNS)
    count = f"{len(vmas)} VMA{'s' if len(vmas) > 1 else ''}"
    out = [f"{process} (pid {mm.pid}): {count}, page 0 at {base << PAGE_SHIFT:x}"]
    has_pte = any(r.pte != " " for r in runs)
    has_rmap = any(r.rmap != " " for r in runs)
    for band in range(0, len(cells), COLUMNS):
        if band:
            out.append("")
        out += _band(cells[band : band + COLUMNS], base, has_pte, has_rmap)
    out += _keys(runs, state.rmap_model)
    out += _elisions(cells, base)
    out += vma_table(vmas, names, dummy=state.rmap_model == "cow_context")
    out += _misses(misses)
    return out


def _band(cells: list[_Cell], base: int, has_pte: bool, has_rmap: bool) -> list[str]:
    ruler = "".join(ELIDED if c.elided else str((c.lo - base) % 10) for c in cells)
    rows = [" " * MARGIN + ruler, " vma  " + "".join(c.vma for c in cells)]
    if has_pte:
        rows.append(" pte  " + "".join(c.pte for c in cells))
    if has_rmap:
        rows.append(" rmap " + "".join(c.rmap for c in cells))
    return [row.rstrip() for row in rows]


def _keys(runs: list[_Run], model: RmapModel) -> list[str]:
    """Only the symbols this picture uses, so the key stays short."""
    pte = {r.pte for r in runs}
    rmap = {r.rmap for r in runs}
    keys = COW_CONTEXT_RMAP_KEY if model == "cow_context" else RMAP_KEY
    parts = [f"{sym} {text}" for sym, text in PTE_KEY.items() if sym in pte]
    parts += [f"{sym} {text}" for sym, text in keys.items() if sym in rmap]
    return [" key: " + "; ".join(parts)] if parts else []


def _elisions(cells: list[_Cell], base: int) -> list[str]:
    hidden = [(col, c) for col, c in enumerate(cells) if c.elided]
    out = [
        f" ~ column {col}: pages {c.lo - base}-{c.hi - base - 1} ({c.hi - c.lo}),"
        f" {c.lo << PAGE_SHIFT:x}-{c.hi << PAGE_SHIFT:x}"
        for col, c in hidden[:MAX_LISTED]
    ]
    if len(hidden) > MAX_LISTED:
        out.append(f" ~ ... and {len(hidden) - MAX_LISTED} more elisions")
    return out


def _runs(
    state: State, process: str, vmas: list[VMA], names: dict[int, str]
) -> tuple[list[_Run], list[str]]:
    """The process's span as runs of alike pages, and the rmap misses found.

    Walks only the page-table entries that exist, so a 1 TiB VMA with a
    few pages faulted costs a few runs.
    """
    table = state.processes[process].pagetable
    runs: list[_Run] = []
    misses: list[str] = []

    def add(run: _Run) -> None:
        if runs and runs[-1].hi == run.lo and runs[-1].same(run):
            runs[-1].hi = run.hi
        else:
            runs.append(run)

    base = end = vmas[0].vm_start >> PAGE_SHIFT
    folios = state.folios
    for vma in vmas:
        lo, hi = vma.vm_start >> PAGE_SHIFT, vma.vm_end >> PAGE_SHIFT
        if lo > end:
            add(_Run(end, lo, GAP))
        letter = names[vma.id][0]
        # The common page, tested inline (a 2 GiB VMA has 524288 of them): an
        # exclusive small anonymous folio that rmap finds where it is.
        finds = {a for a in vma.avc if vma.id in getattr(state.anon_vmas.get(a), "chains", ())}
        delta = vma.vm_pgoff - lo
        at = lo
        for vpn, stop, entry in _entries(state, table, lo, hi, finds, delta):
            if vpn > at:
                add(_Run(at, vpn, letter))
            if entry is None:
                # Pages of FolioRuns that rmap finds: each the common page.
                last = runs[-1] if runs else None
                if (
                    last
                    and last.hi == vpn
                    and (last.vma, last.pte, last.rmap) == (letter, "*", ".")
                ):
                    last.hi = stop
                else:
                    runs.append(_Run(vpn, stop, letter, "*", "."))
                at = stop
                continue
            pte = entry
            folio = folios.get(pte.folio) if pte.kind == PRESENT else None
            if (
                folio is not None
                and folio.mapping in finds
                and folio.index + pte.page == vpn + delta
                and folio.mapcount[pte.page] == 1
                and not (folio.pincount or folio.entire_mapcount or pte.pmd or folio.shmem)
                and pte.folio != ZERO_PAGE
            ):
                last = runs[-1] if runs else None
                if (
                    last
                    and last.hi == vpn
                    and (last.vma, last.pte, last.rmap) == (letter, "*", ".")
                ):
                    last.hi += 1
                else:
                    runs.append(_Run(vpn, vpn + 1, letter, "*", "."))
            else:
                sym, check = _page(state, vma, vpn, pte, names, base, misses)
                add(_Run(vpn, vpn + 1, letter, sym, check))
            at = vpn + 1
        if hi > at:
            add(_Run(at, hi, letter))
        end = max(end, hi)
    return runs, misses


def _entries(
    state: State, table: PageTable, lo: int, hi: int, finds: set[int], delta: int
) -> Iterator[tuple[int, int, Pte | None]]:
    """The entries of pages lo <= vpn < hi in address order, as (vpn, vpn +
    1, pte); pages of a PteRun whose FolioRuns rmap finds at their linear
    index (folio->mapping chained to the VMA, index vpn + delta) as one
    (first vpn, end, None)."""
    for pmd in table.pmd_indexes(lo, hi):
        leaf = table.leaf(pmd)
        assert leaf is not None
        base = pmd << 9
        if not isinstance(leaf, PteRun):
            for off in sorted(leaf):
                if lo <= base + off < hi:
                    yield base + off, base + off + 1, leaf[off]
            continue
        a, b = max(lo, base + leaf.lo), min(hi, base + leaf.hi)
        first = leaf.folio_of(a - base)
        runs = state.folios.runs_over(first, first + b - a) if a < b else []
        if runs is None:
            for vpn in range(a, b):
                yield vpn, vpn + 1, leaf[vpn - base]
            continue
        for run in runs:
            vpn = a + run.first - first
            if run.mapping in finds and run.index == vpn + delta:
                yield vpn, vpn + run.nr, None
            else:
                for page in range(vpn, vpn + run.nr):
                    yield page, page + 1, leaf[page - base]


def _page(
    state: State,
    vma: VMA,
    vpn: int,
    pte: Pte,
    names: dict[int, str],
    base: int,
    misses: list[str],
) -> tuple[str, str]:
    """The pte and rmap symbols of one page; an rmap miss is described in `misses`."""
    if pte.kind == SWAP:
        return "s", " "
    if pte.kind == MIGRATION:
        return "m", " "
    if pte.kind != PRESENT:
        return "X", " "
    if pte.folio == ZERO_PAGE:
        return "z", " "
    where = f"{names[vma.id]} page {vpn - base}"
    folio = state.folios.get(pte.folio)
    if folio is None:
        misses.append(f"X {where}: folio#{pte.folio} does not exist")
        return "X", "?"
    check = _rmap_check(state, vma, vpn, pte, folio, where, misses)
    if folio.pincount:
        return "P", check
    if pte.pmd:
        return "H", check
    mapcount = folio.mapcount[pte.page] if pte.page < len(folio.mapcount) else 0
    return ("+" if mapcount + folio.entire_mapcount > 1 else "*"), check


def _rmap_check(
    state: State, vma: VMA, vpn: int, pte: Pte, folio: Folio, where: str, misses: list[str]
) -> str:
    """The rmap row's symbol for one page (engine.invariants.rmap_check);
    a miss is described in `misses`."""
    result = rmap_check(state, vma, vpn << PAGE_SHIFT, pte.page, folio)
    if result.miss is RmapMiss.OTHER_FILE:
        misses.append(f"? {where}: folio#{folio.id} is in shmem#{folio.shmem}")
        return "?"
    if result.miss in (RmapMiss.NO_ANON_VMA, RmapMiss.NOT_CHAINED):
        mapping = "no mapping" if folio.mapping is None else f"av#{folio.mapping}"
        misses.append(f"? {where}: folio#{folio.id} maps {mapping}, not chaining it")
        return "?"
    if result.miss is RmapMiss.WRONG_INDEX:
        misses.append(
            f"! {where}: folio#{folio.id} index {result.index:x},"
            f" linear_page_index {result.expected:x}"
        )
        return "!"
    if result.miss is not None:  # the cow_context walk's misses
        unfinished = result.miss in (
            RmapMiss.EXCLUSIVE_EARLY_STOP,
            RmapMiss.FORK_NOT_LINKED,
            RmapMiss.UNFAULTED_MAPS_FOLIOS,
        )
        note = " (unfinished in the proposal)" if unfinished else ""
        misses.append(f"? {where}: folio#{folio.id}: {result.miss.value}{note}")
        return "?"
    return "."


def _misses(misses: list[str]) -> list[str]:
    out = [" " + m for m in misses[:MAX_LISTED]]
    if len(misses) > MAX_LISTED:
        out.append(f" ... and {len(misses) - MAX_LISTED} more pages rmap misses")
    return out


def _cells(runs: list[_Run], width: int) -> list[_Cell]:
    """Columns for the runs: every page when they fit, else the longest runs
    elided to a few pages each side of a `~` (one side of a gap's), and if
    even that is too wide the caller wraps the columns into bands."""
    total = sum(r.hi - r.lo for r in runs)
    keep: dict[int, int] = {}
    if total > width:
        for k in (3, 1):
            keep, size = {}, total
            for i in sorted(range(len(runs)), key=lambda i: runs[i].lo - runs[i].hi):
                n = runs[i].hi - runs[i].lo
                if size <= width:
                    break
                if n > 2 * k + 1:
                    keep[i] = k
                    size -= n - (2 * k + 1)
            if size <= width:
                break
    return list(_columns(runs, keep))


def _columns(runs: list[_Run], keep: dict[int, int]) -> Iterator[_Cell]:
    for i, r in enumerate(runs):
        k = keep.get(i)
        if k is None:
            for vpn in range(r.lo, r.hi):
                yield _Cell(vpn, vpn + 1, r.vma, r.pte, r.rmap)
            continue
        for vpn in range(r.lo, r.lo + k):
            yield _Cell(vpn, vpn + 1, r.vma, r.pte, r.rmap)
        yield _Cell(
            r.lo + k,
            r.hi - k,
            ELIDED,
            ELIDED if r.pte != " " else " ",
            ELIDED if r.rmap != " " else " ",
        )
        for vpn in range(r.hi - k, r.hi):
            yield _Cell(vpn, vpn + 1, r.vma, r.pte, r.rmap)
