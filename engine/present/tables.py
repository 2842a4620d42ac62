"""The tables under a page picture: VMAs, anon_vmas, folios.

Ours. One row per VMA (its letter, id, range, size, rwxp, vm_pgoff,
anon_vma and chains), one per anon_vma the shown processes reach (with the
VMAs chained to it, by letter), a one-line count of the folios, and where
a process has an empty PTE table.
"""

from __future__ import annotations

from engine.mm_constants import PAGE_SHIFT
from engine.mm_types import (
    EXEC_PAGE_TABLES,
    VM_EXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    VMA,
    State,
    flag_names,
)
from engine.pagetable import PMD_SHIFT
from engine.present.text import WIDTH, fit
from engine.procfs import vma_perms

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Flags the legend's rwxp column already says, or that every anonymous VMA has.
_PLAIN_FLAGS = VM_READ | VM_WRITE | VM_EXEC | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE
_PLAIN_FLAGS |= 0x40 | 0x00100000  # VM_MAYEXEC, VM_ACCOUNT


def letter_names(state: State, process: str) -> dict[int, str]:
    """Each VMA of `process` named by address order: A, B, ..., z, then A1, B1, ...

    The picture shows only the letter; the legend shows the whole name.
    """
    names = {}
    for i, ident in enumerate(state.processes[process].vmas):
        suffix = str(i // len(LETTERS)) if i >= len(LETTERS) else ""
        names[ident] = LETTERS[i % len(LETTERS)] + suffix
    return names


LEGEND_HEADER = ("", "vma", "start-end", "pages", "prot", "vm_pgoff", "anon_vma", "avc")


def vma_table(vmas: list[VMA], names: dict[int, str], dummy: bool = False) -> list[str]:
    """A table, one row per VMA: its letter, id, range, size, rwxp, vm_pgoff,
    its anon_vma and how many anon_vma_chains it has; unusual flags below.
    With `dummy` (the cow_context model) a faulted VMA's anon_vma is the
    branch's DUMMY_ANON_VMA flag, shown so."""
    rows = [list(LEGEND_HEADER)]
    for vma in vmas:
        rows.append(
            [
                names[vma.id],
                f"#{vma.id}",
                f"{vma.vm_start:x}-{vma.vm_end:x}",
                str(vma.pages),
                vma_perms(vma),
                f"{vma.vm_pgoff:x}",
                "-" if vma.anon_vma is None else "DUMMY" if dummy else f"#{vma.anon_vma}",
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


ANON_VMA_HEADER = ("anon_vma", "root", "parent", "refcount", "num_children", "num_active_vmas")


def anon_vma_table(state: State, processes: list[str] | None) -> list[str]:
    """The anon_vmas the shown processes reach (all when None), with the VMAs
    chained to each named by letter (process:letter when several exist);
    under the cow_context rmap model, the COW contexts instead."""
    if state.rmap_model == "cow_context":
        return cow_context_table(state)
    letters: dict[int, str] = {}
    several = len(state.processes) > 1
    for name in state.process_names():
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


COW_CONTEXT_HEADER = ("cow_context", "mm", "parent", "refcnt", "children")


def cow_context_table(state: State) -> list[str]:
    """Every COW context (engine.cow_context): its mm (exited: -), parent,
    refcount and children, and under it its remap entries as pgoff ranges
    and the offsets recorded there."""
    if not state.cow_contexts:
        return []
    rows = [list(COW_CONTEXT_HEADER)]
    remaps: list[list[str]] = []
    for ctx in sorted(state.cow_contexts.values(), key=lambda c: c.id):
        rows.append(
            [
                f"#{ctx.id}",
                ctx.mm or "- (exited)",
                "-" if ctx.parent is None else f"#{ctx.parent}",
                str(ctx.refcnt),
                " ".join(f"#{c}" for c in ctx.children) or "-",
            ]
        )
        remaps.append(
            [
                f"      remap {r.first:x}-{r.last:x}: offsets {', '.join(map(str, r.offsets))}"
                + (f" (array, cap {r.cap})" if r.cap else "")
                for r in ctx.remaps
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COW_CONTEXT_HEADER))]
    out = []
    for row, entries in zip(rows, [[], *remaps], strict=True):
        out.append(" " + " ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        out += entries
    return out


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


def folio_summary(state: State) -> list[str]:
    runs = sum(run.nr for run in state.folios.runs())  # small, unpinned
    count = pages = runs
    pinned = large = 0
    for folio in state.folios.explicit():
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


def empty_table_summary(state: State, processes: list[str]) -> list[str]:
    """The PTE tables each process has with no entry in them (beyond its
    stack's and vDSO's): they keep their PMD from being none, so a fault
    there maps small pages, never a THP."""
    lines = []
    for name in processes:
        table = state.processes[name].pagetable
        empty = [
            pmd
            for pmd in table.pmd_indexes()
            if not table.leaf(pmd) and pmd not in EXEC_PAGE_TABLES.tables().pte
        ]
        if empty:
            shown = ", ".join(f"{pmd << (PMD_SHIFT + PAGE_SHIFT):x}" for pmd in empty[:3])
            more = f" and {len(empty) - 3} more" if len(empty) > 3 else ""
            lines.append(f"empty PTE tables of {name}: {shown}{more}")
    return lines
