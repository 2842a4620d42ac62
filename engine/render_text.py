"""The plain-text picture of a state, at most 75 columns wide.

Ours. It draws one process's address space the way the kernel's
tools/testing/vma tests draw it in their comments: one column per page, one
letter per VMA, so a kernel developer can paste it into review mail. Under
the VMA row, a `pte` row says what each page maps and an `rmap` row says
whether an rmap walk from the folio would find the page again ('!' where
folio->index no longer matches linear_page_index(), the bug class the
RELOCATE_ANON series is about). Long runs and gaps are elided with `~`,
and every elision is listed with the pages it hides.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from engine.kernel import Kernel
from engine.memory import linear_page_index
from engine.mm_types import (
    VM_EXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    VMA,
    Folio,
    State,
    flag_names,
)
from engine.pagetable import MIGRATION, PRESENT, SWAP, ZERO_PAGE, Pte
from engine.scenario.constants import PAGE_SHIFT
from engine.simulation import Run, StatementRun
from engine.trace import Event

WIDTH = 75
MARGIN = 6  # " vma  ", " pte  ", " rmap ": the row labels
COLUMNS = WIDTH - MARGIN
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
GAP = "."
ELIDED = "~"
MAX_LISTED = 8  # rmap misses and elisions listed per process before "... more"

# Flags the legend's rwxp column already says, or that every anonymous VMA has.
_PLAIN_FLAGS = VM_READ | VM_WRITE | VM_EXEC | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE
_PLAIN_FLAGS |= 0x40 | 0x00100000  # VM_MAYEXEC, VM_ACCOUNT

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


def letter_names(state: State, process: str) -> dict[int, str]:
    """Each VMA of `process` named by address order: A, B, ..., z, then A1, B1, ...

    The picture shows only the letter; the legend shows the whole name.
    """
    names = {}
    for i, ident in enumerate(state.processes[process].vmas):
        suffix = str(i // len(LETTERS)) if i >= len(LETTERS) else ""
        names[ident] = LETTERS[i % len(LETTERS)] + suffix
    return names


def process_order(state: State) -> list[str]:
    """main first, then the others by pid: Map iteration order is arbitrary."""
    return sorted(state.processes, key=lambda n: (n != "main", state.processes[n].pid, n))


def render_state(state: State, process: str | None = None) -> str:
    """The picture, legend and rmap check of one process (all when None),
    then the anon_vmas they reach."""
    names = [process] if process is not None else process_order(state)
    out: list[str] = []
    for name in names:
        out += _process_block(state, name)
        out.append("")
    out += _anon_vma_block(state, None if process is None else names)
    if process is None:
        out += _folio_summary(state)
    return "\n".join(fit(out)).rstrip("\n")


def statement_states(run: Run, i: int) -> tuple[State, State]:
    """Statement i's state before it (its first step) and after it (its last).

    A statement that took no steps (an assignment like `q = p + 4096;`)
    has the state the previous statement left.
    """
    st = run.statements[i]
    if st.first < st.last:
        return run.steps[st.first].state, run.steps[st.last - 1].state
    before = run.steps[st.first - 1].state if st.first > 0 else Kernel().state
    return before, before


def render_statement(run: Run, i: int, inner: bool = False) -> str:
    """Statement i's source line and result, its inner steps if `inner`,
    then the picture of every process after it."""
    st = run.statements[i]
    stmt = st.outcome.statement
    out = [f"line {stmt.line}, {stmt.process}: {stmt.source}", f"  = {_result(st)}"]
    if inner:
        for step in run.steps[st.first : st.last]:
            out += step_lines(step.function, step.summary, step.events, step.warnings)
    out.append("")
    out.append(render_state(statement_states(run, i)[1]))
    return "\n".join(fit(out))


def render_before_after(run: Run, i: int) -> str:
    """Statement i's source line and result, then every process before it
    and after it: the two pictures a review reply quotes."""
    st = run.statements[i]
    stmt = st.outcome.statement
    before, after = statement_states(run, i)
    out = [f"line {stmt.line}, {stmt.process}: {stmt.source}", f"  = {_result(st)}"]
    out += ["", "-- before --", render_state(before), "", "-- after --", render_state(after)]
    return "\n".join(fit(out))


def step_lines(
    function: str, summary: str, events: Iterable[Event], warnings: Iterable[str]
) -> list[str]:
    """One inner step as "  function: summary", its decisions indented under it.

    The "(statement)" marker step that opens every statement says nothing
    the header does not, so it has no line.
    """
    if function == "(statement)":
        return []
    lines = [f"  {function}: {summary}"]
    for event in events:
        shown = ", ".join(f"{k}={v}" for k, v in event.values)
        lines.append(f"    why: {event.function}: {event.decision}")
        if shown:
            lines[-1] += f" ({shown})"
    lines += [f"    WARNING: {w}" for w in warnings]
    return lines


def fit(lines: Iterable[str]) -> list[str]:
    """Every line wrapped to WIDTH columns, continuations indented two more."""
    out: list[str] = []
    for text in lines:
        for line in text.split("\n"):
            if len(line) <= WIDTH:
                out.append(line)
                continue
            indent = " " * min(len(line) - len(line.lstrip(" ")), WIDTH // 2)
            out += textwrap.wrap(
                line.strip(),
                WIDTH,
                initial_indent=indent,
                subsequent_indent=indent + "  ",
                break_long_words=True,
                break_on_hyphens=False,
            )
    return out


def _result(st: StatementRun) -> str:
    if st.outcome.check is not None:
        return st.outcome.check.describe()
    result = st.outcome.result
    if result.value is None or result.result != "ok":
        return result.result
    value = result.value
    return f"ok, returns {value:#x}" if value > 0xFFFF else f"ok, returns {value}"


# --- one process ----------------------------------------------------------


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


def _process_block(state: State, process: str) -> list[str]:
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
    out += _keys(runs)
    out += _elisions(cells, base)
    out += _legend(vmas, names)
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


def _keys(runs: list[_Run]) -> list[str]:
    """Only the symbols this picture uses, so the key stays short."""
    pte = {r.pte for r in runs}
    rmap = {r.rmap for r in runs}
    parts = [f"{sym} {text}" for sym, text in PTE_KEY.items() if sym in pte]
    parts += [f"{sym} {text}" for sym, text in RMAP_KEY.items() if sym in rmap]
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


def _perms(vma: VMA) -> str:
    return (
        ("r" if vma.vm_flags & VM_READ else "-")
        + ("w" if vma.vm_flags & VM_WRITE else "-")
        + ("x" if vma.vm_flags & VM_EXEC else "-")
        + ("s" if vma.vm_flags & VM_MAYSHARE else "p")
    )


LEGEND_HEADER = ("", "vma", "start-end", "pages", "prot", "vm_pgoff", "anon_vma", "avc")


def _legend(vmas: list[VMA], names: dict[int, str]) -> list[str]:
    """A table, one row per VMA: its letter, id, range, size, rwxp, vm_pgoff,
    its anon_vma and how many anon_vma_chains it has; unusual flags below."""
    rows = [list(LEGEND_HEADER)]
    for vma in vmas:
        rows.append(
            [
                names[vma.id],
                f"#{vma.id}",
                f"{vma.vm_start:x}-{vma.vm_end:x}",
                str(vma.pages),
                _perms(vma),
                f"{vma.vm_pgoff:x}",
                "-" if vma.anon_vma is None else f"#{vma.anon_vma}",
                str(len(vma.avc)),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(LEGEND_HEADER))]
    right = {3, 7}  # counts read best right-aligned
    out = []
    shown: list[VMA | None] = [None, *vmas]  # None: the header row
    for each, row in zip(shown, rows, strict=True):
        cells = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        out.append(" " + " ".join(cells).rstrip())
        extra = [] if each is None else flag_names(each.vm_flags & ~_PLAIN_FLAGS)
        if each is not None and each.shmem is not None:
            extra.insert(0, f"shmem#{each.shmem}")
        if extra:
            out.append(" " * (widths[0] + 2) + "also " + ",".join(extra))
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
        for vpn, pte in table.items(lo, hi):
            if vpn > at:
                add(_Run(at, vpn, letter))
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
    """Would rmap_walk_anon() (or the shmem file's walk) from this folio reach vpn?

    It walks the VMAs chained to folio->mapping, and in each looks at
    vma_address(folio->index): both must lead back here.
    """
    expected = linear_page_index(vma, vpn << PAGE_SHIFT)
    index = folio.index + pte.page
    if folio.shmem is not None:
        if folio.shmem != vma.shmem:
            misses.append(f"? {where}: folio#{folio.id} is in shmem#{folio.shmem}")
            return "?"
    else:
        av = None if folio.mapping is None else state.anon_vmas.get(folio.mapping)
        if av is None or vma.id not in av.chains:
            mapping = "no mapping" if folio.mapping is None else f"av#{folio.mapping}"
            misses.append(f"? {where}: folio#{folio.id} maps {mapping}, not chaining it")
            return "?"
    if index != expected:
        misses.append(
            f"! {where}: folio#{folio.id} index {index:x}, linear_page_index {expected:x}"
        )
        return "!"
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


# --- anon_vmas and folios -------------------------------------------------


ANON_VMA_HEADER = ("anon_vma", "root", "parent", "refcount", "num_children", "num_active_vmas")


def _anon_vma_block(state: State, processes: list[str] | None) -> list[str]:
    """The anon_vmas the shown processes reach (all when None), with the VMAs
    chained to each named by letter (process:letter when several exist)."""
    letters: dict[int, str] = {}
    several = len(state.processes) > 1
    for name in state.processes:
        for ident, letter in letter_names(state, name).items():
            letters[ident] = f"{name}:{letter}" if several else letter
    shown = set(state.anon_vmas.keys()) if processes is None else _reached(state, processes)
    if not shown:
        return []
    rows = [list(ANON_VMA_HEADER)]
    chains = []
    freed = []
    for ident in sorted(shown):
        av = state.anon_vmas.get(ident)
        if av is None:
            freed.append(f" anon_vma #{ident} is freed, yet still referenced")
            continue
        rows.append(
            [
                f"#{av.id}",
                f"#{av.root}",
                f"#{av.parent}",
                str(av.refcount),
                str(av.num_children),
                str(av.num_active_vmas),
            ]
        )
        chains.append(" ".join(sorted(letters.get(v, f"vma#{v}?") for v in av.chains)) or "-")
    widths = [max(len(row[i]) for row in rows) for i in range(len(ANON_VMA_HEADER))]
    out = []
    for row, chained in zip(rows, ["chains", *chains], strict=True):
        line = " " + " ".join(
            c.rjust(w) if i > 2 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        if len(line) + 1 + len(chained) <= WIDTH:
            out.append(f"{line} {chained}")
        else:  # the chains on their own lines, under the row
            out += [line, *fit(["      chains: " + chained])]
    return out + freed


def _reached(state: State, processes: list[str]) -> set[int]:
    """anon_vmas chained from the processes' VMAs or named by their folios,
    and the parents and roots above them."""
    found: set[int] = set()
    for name in processes:
        for vma in state.mm_vmas(name):
            found.update(vma.avc)
            if vma.anon_vma is not None:
                found.add(vma.anon_vma)
    todo = list(found)
    while todo:
        av = state.anon_vmas.get(todo.pop())
        if av is None:
            continue
        for up in (av.parent, av.root):
            if up not in found:
                found.add(up)
                todo.append(up)
    return found


def _folio_summary(state: State) -> list[str]:
    count = pages = pinned = large = 0
    for folio in state.folios.values():
        count += 1
        pages += 1 << folio.order
        pinned += folio.pincount > 0
        large += folio.order > 0
    if not count:
        return []
    line = f"folios: {count} ({pages} pages)"
    if large:
        line += f", {large} large"
    if pinned:
        line += f", {pinned} pinned"
    return [line]
