"""Fuzzing: hostile and random scenarios keep the rules of bad input.

Each generated or mutated scenario (tests/support/fuzz.py) must end in a
run or a ScenarioError, never another exception; the error names a line
and a column inside the text; the run stays within its named limits, and
a stopped run names the limit or the line. The API, driven from its
OpenAPI schema by schemathesis, never answers 5xx and each 4xx names what
was wrong. benchmarks/fuzz.py runs the same strategies 100,000 times.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from engine.sim.limits import Limits
from tests.support.fuzz import (
    FUZZ_LIMITS,
    LIMIT_NAMES,
    NOISE,
    any_scenario,
    api_operations,
    check,
    exercise,
    mutants,
    scenarios,
)

LIMITS_PASSED = tuple(f"limit {name}" for name in sorted(LIMIT_NAMES))


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios())
def test_generated_scenarios_run_or_name_the_line_and_column(source: str) -> None:
    assert check(source) in ("ok", "stopped", "scenario_error", *LIMITS_PASSED)


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(mutants(), st.text(NOISE, max_size=200)))
def test_mutated_gallery_scenarios_run_or_name_the_line_and_column(source: str) -> None:
    assert check(source) in ("ok", "stopped", "scenario_error", *LIMITS_PASSED)


def kinds(strategy: st.SearchStrategy[str], examples: int, limits: Limits) -> Counter[str]:
    """How `examples` runs of seeded examples of `strategy` ended (check()'s kinds)."""
    seen: Counter[str] = Counter()

    @seed(7)  # the same examples every time: the tests below count them
    @settings(
        max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(strategy)
    def sample(source: str) -> None:
        seen[check(source, limits)] += 1

    sample()
    return seen


@pytest.mark.parametrize(
    "tiny", [{"max_steps": 15}, {"max_populated_pages": 4}, {"max_processes": 1}], ids=str
)
def test_a_tiny_limit_stops_runs_and_is_never_passed(tiny: dict[str, int]) -> None:
    """With one limit tiny, generated runs stop at it, naming it, and no snapshot passes it."""
    seen = kinds(any_scenario(), 150, replace(FUZZ_LIMITS, **tiny))
    (name,) = tiny
    assert seen[f"limit {name}"] > 0, seen


def test_most_generated_scenarios_run() -> None:
    """The generator is not only making parse errors: most of its scenarios run."""
    seen = kinds(scenarios(), 60, FUZZ_LIMITS)
    assert seen.total() - seen["scenario_error"] >= seen.total() // 4, seen


def test_api_never_answers_5xx_and_each_4xx_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """schemathesis against every operation of /openapi.json."""
    pytest.importorskip("schemathesis")
    from app.main import create_app

    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path))
    operations = api_operations(create_app())
    assert len(operations) >= 10
    assert sum(exercise(op, 10) for op in operations) >= len(operations)
