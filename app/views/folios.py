"""The page columns: one row per populated page, its folio, index and rmap check."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from app.views.layout import processes_by_pid
from engine.invariants import rmap_check
from engine.mm_constants import PAGE_SHIFT, PAGE_SIZE
from engine.mm_types import VMA, State
from engine.pagemap import linear_page_index
from engine.pagetable import ZERO_PAGE
from engine.sim.simulation import Changes
from engine.sim.trace import ObjRef

FOLIO_ROW_CAP = 512


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
    change: Literal["", "created", "changed"]


class FolioTable(BaseModel):
    rows: list[FolioRow]
    total: int
    cap: int
    mapping: str = "anon_vma"
    """What folio->mapping names: an anon_vma, or a cow_context under that model."""

    @property
    def capped(self) -> bool:
        return self.total > len(self.rows)


def folio_table(state: State, changes: Changes, cap: int = FOLIO_ROW_CAP) -> FolioTable:
    """One row per populated page, in process and address order, at most `cap` rows."""
    rows: list[FolioRow] = []
    total = 0
    for name in processes_by_pid(state):
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
    return FolioTable(rows=rows, total=total, cap=cap, mapping=state.rmap_model)


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
        change=changes.of(ObjRef("folio", folio.id)),
    )
