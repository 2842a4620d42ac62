"""Differential tests: generated scenarios on the simulator and on the host kernel.

Every (family, seed) of tests/support/scenario_gen.py runs twice, once on the
simulated kernel (engine.sim.simulation.run_source) and once on the real one
(RealMachine, a fresh set of executor processes per scenario, sharing one
compiled executor); engine.verify.compare must find no difference in any
statement's result, returned address or /proc/PID/maps. A failure prints
the scenario with line numbers and the differences, ready to be filed.
"""

from __future__ import annotations

import traceback
from typing import Any

import pytest

from engine.scenario.parse import parse
from engine.sim.simulation import run_source
from engine.verify.compare import Difference, compare
from engine.verify.real import RealMachine, executor_path
from engine.verify.steps import recorded, simulated
from tests.support.host import real_kernel_unavailable
from tests.support.scenario_gen import cases, generate

_reason = real_kernel_unavailable()
if _reason is not None:
    pytest.skip(_reason, allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def _executor() -> None:
    """Build the executor once, before the first scenario needs it."""
    executor_path()


def real_steps(source: str) -> list[dict[str, Any]]:
    """The scenario's steps on the host kernel, with resident pages."""
    with RealMachine() as machine:
        return recorded(parse(source), machine)


def sim_steps(source: str) -> tuple[list[dict[str, Any]], str | None]:
    """The scenario's steps on the simulated kernel, and why it stopped early, if it did.

    A crash of the simulator is reported the same way, with its traceback's
    last frames, so the failure still shows the scenario that caused it.
    """
    try:
        result = run_source(source)
    except Exception as err:  # noqa: BLE001 - any crash is a finding, reported with the scenario
        frames = traceback.format_exception(err)[-6:]
        return [], "the simulator crashed:\n" + "".join(frames)
    return simulated(result), result.error


def numbered(source: str) -> str:
    return "\n".join(f"{i:3} | {line}" for i, line in enumerate(source.splitlines(), 1))


def report(
    family: str, seed: int, source: str, differences: list[Difference], error: str | None
) -> str:
    parts = [
        f"{family}-{seed}: the simulator and Linux disagree",
        "",
        numbered(source),
        "",
    ]
    if error:
        parts.append(f"the simulation stopped early: {error}")
    parts += [str(d) for d in differences]
    return "\n".join(parts)


@pytest.mark.parametrize(("family", "seed"), cases(), ids=[f"{f}-{s}" for f, s in cases()])
def test_simulator_matches_the_kernel(family: str, seed: int) -> None:
    source = generate(seed, family)
    simulated, error = sim_steps(source)
    real = real_steps(source)
    differences = compare(simulated, real)
    assert error is None and not differences, report(family, seed, source, differences, error)
