"""What a scenario left behind, collected the same way from the engine and the host kernel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from engine.scenario.interpret import StepOutcome
from engine.scenario.interpret import run as interpret_run
from engine.scenario.parse import parse
from engine.sim.simulation import Run, run_source
from engine.verify.real import RealMachine
from tests.support.host import real_kernel_unavailable

MAX_U64 = (1 << 64) - 1


@dataclass
class Outcome:
    """What a scenario left behind: variables, each statement's result, the maps."""

    values: dict[str, int]
    results: list[tuple[str, str]]
    maps: dict[str, list[str]]

    def __getitem__(self, name: str) -> int:
        return self.values[name]

    def failed(self) -> list[tuple[str, str]]:
        return [(src, res) for src, res in self.results if res != "ok"]

    def extent(self, addr: int, process: str = "main") -> tuple[int, int] | None:
        """The VMA of `process` covering addr, as (start, end) in bytes."""
        for line in self.maps[process]:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return lo, hi
        return None


def _collect(outcomes: Iterator[StepOutcome], maps: Callable[[], dict[str, list[str]]]) -> Outcome:
    values: dict[str, int] = {}
    results: list[tuple[str, str]] = []
    for outcome in outcomes:
        st = outcome.statement
        if st.target is not None:
            v = outcome.result.value
            values[st.target] = (v & MAX_U64) if v is not None else 0
        results.append((st.source, outcome.result.result))
    return Outcome(values, results, maps())


def engine_outcome(run: Run) -> Outcome:
    """A finished simulated run, in the form a kernel run is collected in."""
    assert run.error is None, run.error
    return _collect((s.outcome for s in run.statements), lambda: run.statements[-1].maps)


def on_engine(source: str) -> Outcome:
    """Run `source` on the simulated 6.18 kernel."""
    return engine_outcome(run_source(source))


def on_kernel(source: str) -> Outcome:
    """Run `source` on this host's kernel (skip where it cannot run)."""
    reason = real_kernel_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with RealMachine() as machine:
        return _collect(interpret_run(parse(source), machine), machine.maps)
