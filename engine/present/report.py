"""A whole run as the CLI's JSON document.

Ours. The contract (scenario-language.md) fixes the keys every statement
carries; each statement here also carries its inner steps, each with its
global index and the invariant violations in the state after it (the
engine.invariants checks, with the locks held then), and the metadata
(engine.accounting) the state after the statement holds. Snapshots are left
out, violations come summarised (a run of pages broken the same way is one
record) and checked incrementally (invariants.Checker), locks taken in turn
are one line: the document grows with what happened, not with the size of
memory, and is written one statement at a time. Without `detail`, what a
step created, changed or freed comes as runs of ids (present.trace.ref_runs):
then the document grows with the steps alone. With `pages`, each statement
also carries every process's populated pages (`page_json`), bounded by
Limits.max_page_records, and its page-table pages (`table_json`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, replace
from typing import TextIO

from engine.accounting import metadata
from engine.invariants import Checker, lock_order
from engine.mm_constants import PAGE_SIZE
from engine.pagetable import TablePages
from engine.present.trace import event_values, lock_summary, ref_runs
from engine.procfs import all_pages, populated_pages, table_pages
from engine.sim.backend import PageRecord
from engine.sim.limits import LimitExceeded, Limits
from engine.sim.simulation import Run, Suite
from engine.sim.trace import ObjRef, Step


def run_json(
    run: Run, detail: bool = True, pages: bool = False, limits: Limits | None = None
) -> dict[str, object]:
    """{"steps": [...]}, plus "error" when the run stopped early.

    With `pages`, raises LimitExceeded("max_page_records") before building
    a document that would describe more pages than the limit allows.
    """
    return {
        "rmap_model": run.rmap_model,
        "steps": list(statement_records(run, detail, pages, limits)),
        **_error(run),
    }


def verdict_json(run: Run) -> dict[str, object]:
    """How one harness test ended: result, reason, assertions passed and failed."""
    verdict = run.verdict
    assert verdict is not None
    return {
        "result": verdict.result,
        "reason": verdict.reason,
        "assertions": {"passed": verdict.passed, "failed": verdict.failed},
    }


def suite_json(suite: Suite, detail: bool = True, pages: bool = False) -> dict[str, object]:
    """A harness file's JSON (`run FILE --json`): each test's verdict and
    steps (with `pages`, every page after each statement), the notes."""
    tests = [
        {"name": r.test, **verdict_json(r), "steps": run_json(r, detail, pages)["steps"]}
        for r in suite.runs
    ]
    notes = [{"line": n.line, "col": n.col, "text": n.text} for n in suite.harness.notes]
    model = suite.runs[0].rmap_model if suite.runs else "anon_vma"
    return {"rmap_model": model, "tests": tests, "notes": notes}


def write_json(run: Run, out: TextIO, detail: bool = True, pages: bool = False) -> None:
    """json.dumps(run_json(run, detail, pages)), written one statement at a
    time: the document is never whole in memory. A --pages document past
    max_page_records raises LimitExceeded before anything is written."""
    records = statement_records(run, detail, pages)
    first = next(records, None)
    out.write('{"rmap_model": ' + json.dumps(run.rmap_model) + ', "steps": [')
    if first is not None:
        out.write(json.dumps(first))
    for entry in records:
        out.write(", " + json.dumps(entry))
    out.write("]")
    if run.error is not None:
        out.write(', "error": ' + json.dumps(run.error))
    out.write("}")


def statement_records(
    run: Run, detail: bool = True, pages: bool = False, limits: Limits | None = None
) -> Iterator[dict[str, object]]:
    """Each statement's JSON entry, in order, one at a time (to stream);
    with `pages`, the page-record limit is checked before the first."""
    if pages:
        _check_page_records(run, (limits or Limits()).max_page_records)
    checker = Checker()
    state = None
    last: tuple[object, object, list[dict[str, object]]] | None = None
    for statement in run.statements:
        entry = statement.record()
        inner = []
        for index in range(statement.first, statement.last):
            step = run.steps[index]
            item = step_json(step, detail)
            item["index"] = index
            # A step that changed nothing keeps the same State object: check it once.
            if last is None or last[0] is not step.state or last[1] != step.held:
                found = checker.summarise(step.state, step.held, step.folios_touched())
                last = (step.state, step.held, [v.as_dict() for v in found])
            item["violations"] = last[2] + [v.as_dict() for v in lock_order(step.acquired)]
            inner.append(item)
        entry["inner"] = inner
        if statement.last > statement.first:
            state = run.steps[statement.last - 1].state
            entry["metadata"] = metadata(state).as_dict()
        if pages and state is not None:
            entry["pages"] = {
                name: page_json(found.pages) for name, found in all_pages(state).items()
            }
            entry["page_tables"] = {
                name: table_json(tables) for name, tables in table_pages(state).items()
            }
        yield entry


def table_json(tables: TablePages) -> dict[str, int]:
    """A process's page-table pages by level, as VmPTE counts them: PTE
    tables (a huge PMD's deposited one among them), PMD and PUD tables."""
    return {"pte": len(tables.pte), "pmd": len(tables.pmd), "pud": len(tables.pud)}


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


def _error(run: Run) -> dict[str, object]:
    return {} if run.error is None else {"error": run.error}


def step_json(step: Step, detail: bool = True) -> dict[str, object]:
    """One inner step's JSON form, without its state; its objects one by
    one with `detail`, else as runs of ids."""
    refs = _refs if detail else ref_runs
    return {
        "function": step.function,
        "summary": step.summary,
        "locks": lock_summary(step.locks, step.held),
        "created": refs(step.created),
        "changed": refs(step.changed),
        "freed": refs(step.freed),
        "events": [
            {
                "function": e.function,
                "decision": e.decision,
                "values": event_values(e),
                "unfinished": None if e.unfinished is None else e.unfinished._asdict(),
            }
            for e in step.events
        ],
        "warnings": list(step.warnings),
    }


def _refs(refs: tuple[ObjRef, ...]) -> list[str]:
    return [str(ref) for ref in refs]
