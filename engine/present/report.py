"""A whole run as the CLI's JSON document.

Ours. The contract (scenario-language.md) fixes the keys every statement
carries; each statement here also carries its inner steps, each with its
global index and the invariant violations in the state after it (the
engine.invariants checks, with the locks held then), and the metadata
(engine.accounting) the state after the statement holds. Snapshots are left
out: the document grows with what happened, not with the size of memory.
With `pages`, each statement also carries every process's populated pages
(`page_json`), bounded by Limits.max_page_records.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from engine.accounting import metadata
from engine.invariants import check
from engine.mm_constants import PAGE_SIZE
from engine.procfs import all_pages, populated_pages
from engine.sim.backend import PageRecord
from engine.sim.limits import LimitExceeded, Limits
from engine.sim.simulation import Run


def run_json(run: Run, pages: bool = False, limits: Limits | None = None) -> dict[str, object]:
    """{"steps": [...]}, plus "error" when the run stopped early.

    With `pages`, raises LimitExceeded("max_page_records") before building
    a document that would describe more pages than the limit allows.
    """
    if pages:
        _check_page_records(run, (limits or Limits()).max_page_records)
    state = None
    steps = []
    last: tuple[object, tuple[str, ...], list[dict[str, object]]] | None = None
    for statement in run.statements:
        entry = statement.record()
        inner = []
        for index in range(statement.first, statement.last):
            step = run.steps[index]
            item = step.as_dict()
            item["index"] = index
            # A step that changed nothing keeps the same State object: check it once.
            if last is None or last[0] is not step.state or last[1] != step.held:
                last = (
                    step.state,
                    step.held,
                    [v.as_dict() for v in check(step.state, step.held)],
                )
            item["violations"] = last[2]
            inner.append(item)
        entry["inner"] = inner
        if statement.last > statement.first:
            state = run.steps[statement.last - 1].state
            entry["metadata"] = metadata(state).as_dict()
        if pages and state is not None:
            entry["pages"] = {
                name: page_json(found.pages) for name, found in all_pages(state).items()
            }
        steps.append(entry)
    document: dict[str, object] = {"steps": steps}
    if run.error is not None:
        document["error"] = run.error
    return document


def page_json(records: list[PageRecord]) -> list[dict[str, object]]:
    """A process's page records, runs compressed.

    Each item is a PageRecord's fields plus "pages": how many consecutive
    pages it stands for. Page i of a run (from 0) lies at addr + i * 4096
    and has page_in_folio + i and index + i (where those are not null);
    every other field is the same for all its pages: the 512 pages of a
    PMD-mapped THP are one item, a run of small folios one item each.
    """
    out: list[dict[str, object]] = []
    first: PageRecord | None = None
    count = 0
    for record in records:
        if first is not None and record == _advanced(first, count):
            count += 1
            continue
        if first is not None:
            out.append({**asdict(first), "pages": count})
        first, count = record, 1
    if first is not None:
        out.append({**asdict(first), "pages": count})
    return out


def _advanced(record: PageRecord, by: int) -> PageRecord:
    """The record the page `by` pages after `record` has in the same run."""
    return replace(
        record,
        addr=record.addr + by * PAGE_SIZE,
        page_in_folio=None if record.page_in_folio is None else record.page_in_folio + by,
        index=None if record.index is None else record.index + by,
    )


def _check_page_records(run: Run, limit: int) -> None:
    """Pages x statements, counted before any record is built."""
    total = 0
    state = None
    for statement in run.statements:
        if statement.last > statement.first:
            state = run.steps[statement.last - 1].state
        if state is not None:
            total += populated_pages(state)
        if total > limit:
            raise LimitExceeded("max_page_records", limit, total)
