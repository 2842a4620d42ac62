"""The anon_vma hierarchy: anon_vmas by depth under their root, chained to VMAs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from app.views.layout import anon_vma_depths, processes_by_pid, rmap_colours
from engine.mm_types import State
from engine.sim.simulation import Changes
from engine.sim.trace import ObjRef

NODE_W = 150
NODE_H = 38
ROW_H = 48


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
    change: Literal["", "created", "changed"]
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


def anon_graph(state: State, changes: Changes) -> AnonGraph:
    """anon_vmas by depth under their root, VMAs in a last column, chains as edges."""
    avs = state.anon_vmas
    depth = anon_vma_depths(state)
    colours = rmap_colours(state)
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
                change=changes.of(ObjRef("anon_vma", av.id)),
                x=10 + depth[av_id] * (NODE_W + 30),
                y=10 + row * ROW_H,
            )
        )
    vma_x = 10 + (max(depth.values(), default=0) + 1) * (NODE_W + 30) + 40
    vma_nodes = []
    for row, v in enumerate(v for name in processes_by_pid(state) for v in state.mm_vmas(name)):
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
