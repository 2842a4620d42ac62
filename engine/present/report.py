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
from dataclasses import fields
from typing import TextIO

from engine.accounting import metadata
from engine.invariants import Checker, lock_order
from engine.mm_constants import PAGE_SIZE
from engine.mm_types import FolioRun, State
from engine.pagetable import PMD_SHIFT, PteRun, TablePages
from engine.present.trace import event_values, lock_summary, ref_runs
from engine.procfs import page_record, populated_pages, table_pages
from engine.sim.backend import PageRecord
from engine.sim.limits import LimitExceeded, Limits
from engine.sim.simulation import Run, Suite
from engine.sim.trace import Refs, Step


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
    time and each statement's pages one item at a time: the document is
    never whole in memory, nor a statement's pages. A --pages document past
    max_page_records raises LimitExceeded before anything is written."""
    out.write('{"rmap_model": ' + json.dumps(run.rmap_model) + ', "steps": [')
    for i, (entry, state) in enumerate(_statements(run, detail, pages)):
        out.write(", " if i else "")
        if state is None:
            out.write(json.dumps(entry))
            continue
        # The pages go last, a process at a time, an item at a time.
        out.write(json.dumps(entry)[:-1] + ', "pages": {')
        for j, name in enumerate(state.process_names()):
            out.write((", " if j else "") + json.dumps(name) + ": [")
            for k, item in enumerate(page_json(state, name)):
                out.write((", " if k else "") + json.dumps(item))
            out.write("]")
        out.write('}, "page_tables": ' + json.dumps(_page_tables(state)) + "}")
    out.write("]")
    if run.error is not None:
        out.write(', "error": ' + json.dumps(run.error))
    out.write("}")


def statement_records(
    run: Run, detail: bool = True, pages: bool = False, limits: Limits | None = None
) -> Iterator[dict[str, object]]:
    """Each statement's JSON entry, in order, one at a time (to stream);
    with `pages`, the page-record limit is checked before the first."""
    for entry, state in _statements(run, detail, pages, limits):
        if state is not None:
            entry["pages"] = {name: list(page_json(state, name)) for name in state.process_names()}
            entry["page_tables"] = _page_tables(state)
        yield entry


def _statements(
    run: Run, detail: bool, pages: bool, limits: Limits | None = None
) -> Iterator[tuple[dict[str, object], State | None]]:
    """Each statement's JSON entry but its pages, and the state whose pages
    it carries (None without `pages`, or before any state)."""
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
        yield entry, state if pages else None


def table_json(tables: TablePages) -> dict[str, int]:
    """A process's page-table pages by level, as VmPTE counts them: PTE
    tables (a huge PMD's deposited one among them), PMD and PUD tables."""
    return {"pte": len(tables.pte), "pmd": len(tables.pmd), "pud": len(tables.pud)}


def _page_tables(state: State) -> dict[str, object]:
    """Each process's page-table pages (table_json), for a --pages entry."""
    return {name: table_json(tables) for name, tables in table_pages(state).items()}


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


def page_json(state: State, name: str) -> Iterator[dict[str, object]]:
    """Process `name`'s page records (engine.procfs.page_record), runs
    compressed, made one at a time.

    Each item is a PageRecord's fields plus "pages": how many consecutive
    pages it stands for. Page i of a run (from 0) lies at addr + i * 4096
    and has page_in_folio + i and index + i (where those are not null);
    every other field is the same for all its pages: the 512 pages of a
    PMD-mapped THP are one item, a run of small folios one item each.
    """
    table = state.processes[name].pagetable
    first: PageRecord | None = None
    count = 0
    for pmd in table.pmd_indexes():
        leaf = table.leaf(pmd)
        assert leaf is not None
        base = pmd << PMD_SHIFT
        if isinstance(leaf, PteRun):
            runs = state.folios.runs_over(leaf.first, leaf.first + len(leaf))
            if runs is not None:
                # A folio of a run is mapped once: no item continues into or
                # out of its page, each is page_record() of it alone.
                if first is not None:
                    yield {**_fields(first), "pages": count}
                    first = None
                yield from _run_items(state, leaf, base, runs)
                continue
        for off in sorted(leaf):
            record = page_record(state, base | off, leaf[off])
            if first is not None and _continues(first, count, record):
                count += 1
                continue
            if first is not None:
                yield {**_fields(first), "pages": count}
            first, count = record, 1
    if first is not None:
        yield {**_fields(first), "pages": count}


def _run_items(
    state: State, leaf: PteRun, base: int, runs: list[FolioRun]
) -> Iterator[dict[str, object]]:
    """The items of a PteRun table over FolioRuns: page_record() of each
    run's first page, and for its i-th page the same fields but the
    address, the folio and the index, each i more (a run's folios differ
    in nothing else)."""
    vpn = base + leaf.lo
    for run in runs:
        item = {**_fields(page_record(state, vpn, leaf[vpn - base])), "pages": 1}
        addr, folio, index = item["addr"], item["folio"], item["index"]
        assert isinstance(addr, int) and isinstance(folio, int) and isinstance(index, int)
        for i in range(run.nr):
            yield {**item, "addr": addr + i * PAGE_SIZE, "folio": folio + i, "index": index + i}
        vpn += run.nr


_NAMES = tuple(f.name for f in fields(PageRecord))
_SAME = tuple(name for name in _NAMES if name not in ("addr", "page_in_folio", "index"))


def _fields(record: PageRecord) -> dict[str, object]:
    """asdict() of a record of plain values, without its deep copy."""
    return {name: getattr(record, name) for name in _NAMES}


def _continues(first: PageRecord, by: int, record: PageRecord) -> bool:
    """Is `record` the page `by` pages after `first` in the same run: the
    same fields but for addr, page_in_folio and index, each `by` more?"""

    def plus(value: int | None) -> int | None:
        return None if value is None else value + by

    return (
        record.addr == first.addr + by * PAGE_SIZE
        and record.page_in_folio == plus(first.page_in_folio)
        and record.index == plus(first.index)
        and all(getattr(record, name) == getattr(first, name) for name in _SAME)
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


def _refs(refs: Refs) -> list[str]:
    out: list[str] = []
    for item in refs.items:
        if isinstance(item, range):
            out += [f"folio:{ident}" for ident in item]
        else:
            out.append(str(item))
    return out
