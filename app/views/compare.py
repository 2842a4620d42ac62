"""The compare view: two runs of one scenario after the same statement, side by side,
each /proc line and page row flagged where the other run differs."""

from __future__ import annotations

from pydantic import BaseModel

from app.views.address_map import AddressMap, address_map
from app.views.folios import FolioRow, folio_table
from app.views.step import Counts, StatementView, ViolationView, counts, statement_view, violations
from engine.procfs import proc_maps
from engine.sim.simulation import Changes, Run

COMPARE_FOLIO_CAP = 128


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


def compare_view(
    runs: tuple[Run, Run], variants: tuple[tuple[str, str], tuple[str, str]], index: int
) -> CompareView:
    """Both runs after statement `index`, each line and row flagged where the other differs."""
    states = [run.statement_states(index)[1] for run in runs]
    changes = [Changes.of_steps(run.statement_steps(index)) for run in runs]
    maps = [proc_maps(st) for st in states]
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
                violations=violations(states[i]),
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
