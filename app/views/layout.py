"""What every drawing of a snapshot shares: the order of processes, and one
colour per anon_vma, so a VMA bar and its anon_vma node match."""

from __future__ import annotations

from engine.mm_types import State

PALETTE_SIZE = 8


def processes_by_pid(state: State) -> list[str]:
    """The live processes, oldest first."""
    return sorted(state.processes, key=lambda p: state.processes[p].pid)


def anon_vma_colours(state: State) -> dict[int, int]:
    """anon_vma id -> palette index (templates: the av-N classes of app.css)."""
    return {av: i % PALETTE_SIZE for i, av in enumerate(sorted(state.anon_vmas))}


def anon_vma_depths(state: State) -> dict[int, int]:
    """anon_vma id -> its depth under its root (0 for a root), by parent links."""
    avs = state.anon_vmas
    depth: dict[int, int] = {}
    for av_id in avs:
        d, cur, seen = 0, avs[av_id], set()
        while cur.parent != cur.id and cur.parent in avs and cur.id not in seen:
            seen.add(cur.id)
            cur, d = avs[cur.parent], d + 1
        depth[av_id] = d
    return depth
