"""What every drawing of a snapshot shares: the order of processes, and one
colour per rmap object (anon_vma, or cow_context under that model), so a VMA
bar, its folios and its tree node match."""

from __future__ import annotations

from engine.mm_types import VMA, State

PALETTE_SIZE = 8


def processes_by_pid(state: State) -> list[str]:
    """The live processes, oldest first."""
    return sorted(state.processes, key=lambda p: state.processes[p].pid)


def rmap_colours(state: State) -> dict[int, int]:
    """anon_vma id (cow_context id under that model) -> palette index
    (templates: the av-N classes of app.css)."""
    objects = state.cow_contexts if state.rmap_model == "cow_context" else state.anon_vmas
    return {ident: i % PALETTE_SIZE for i, ident in enumerate(sorted(objects))}


def _depths(parent_of: dict[int, int | None]) -> dict[int, int]:
    """Each node's depth under its root (0 for a root), by parent links."""
    depth: dict[int, int] = {}
    for ident in parent_of:
        d, cur, seen = 0, ident, set()
        while (up := parent_of[cur]) is not None and up in parent_of and cur not in seen:
            seen.add(cur)
            cur, d = up, d + 1
        depth[ident] = d
    return depth


def anon_vma_depths(state: State) -> dict[int, int]:
    """anon_vma id -> its depth under its root (0 for a root), by parent links."""
    return _depths({a.id: None if a.parent == a.id else a.parent for a in state.anon_vmas.values()})


def cow_context_depths(state: State) -> dict[int, int]:
    """cow_context id -> its depth in the fork tree (0 for a context without a parent)."""
    return _depths({c.id: c.parent for c in state.cow_contexts.values()})


def vma_rmap_names(vma: VMA, state: State) -> tuple[str, str]:
    """What a VMA's anon_vma field says, short and long. Under cow_context it
    is only the branch's DUMMY_ANON_VMA "faulted" flag (held as the id of the
    mm's context), not an anon_vma."""
    if vma.anon_vma is None:
        return (
            ("unfaulted", "NULL (not faulted)")
            if state.rmap_model == "cow_context"
            else (
                "no anon_vma",
                "none",
            )
        )
    if state.rmap_model == "cow_context":
        return f"ctx#{vma.anon_vma}", f"DUMMY_ANON_VMA (faulted; cow_context#{vma.anon_vma})"
    return f"av#{vma.anon_vma}", f"anon_vma#{vma.anon_vma}"
