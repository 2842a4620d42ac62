"""Both sides of a comparison in one form: the contract's step dicts plus
each process's resident pages per VMA, its page-table pages and, when
asked, every page.

Ours. `verify` and the differential tests compare the simulated kernel with
the real one statement by statement; both build their steps here, so the
two sides are recorded the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.procfs import all_pages, page_tables, resident_pages
from engine.scenario import ast
from engine.scenario.errors import ScenarioError
from engine.scenario.interpret import StepOutcome, run, step_record
from engine.sim.backend import Backend
from engine.sim.simulation import Run


def recorded(scenario: ast.Scenario, backend: Backend, pages: bool = False) -> list[dict[str, Any]]:
    """Run a scenario on any backend, recording maps, resident pages and
    page tables (and every page, with `pages`) after each statement."""
    return record(run(scenario, backend), backend, pages)


def record(
    outcomes: Iterator[StepOutcome], backend: Backend, pages: bool = False
) -> list[dict[str, Any]]:
    """Each outcome as a step with the backend's maps, resident pages and
    page tables (and every page, with `pages`) after it (a harness test's outcomes
    too). A scenario error (a division by zero) ends the record where it
    happened, as it ends the simulated run."""
    steps = []
    try:
        for outcome in outcomes:
            entry = {
                **step_record(outcome),
                "maps": backend.maps(),
                "resident": backend.resident(),
                "page_tables": backend.page_tables(),
            }
            if pages:
                entry["pages"] = backend.pages()
            steps.append(entry)
    except ScenarioError:
        pass
    return steps


def simulated(result: Run, pages: bool = False) -> list[dict[str, Any]]:
    """A finished simulated run's steps, with resident pages and page
    tables (and every page, with `pages`) from the state each statement
    left."""
    steps: list[dict[str, Any]] = []
    state = None
    for statement in result.statements:
        entry: dict[str, Any] = statement.record()
        if statement.last > statement.first:
            state = result.steps[statement.last - 1].state
        if state is not None:
            entry["resident"] = resident_pages(state)
            entry["page_tables"] = page_tables(state)
            if pages:
                entry["pages"] = all_pages(state)
        steps.append(entry)
    return steps
