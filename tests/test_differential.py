"""Differential tests: generated scenarios on the simulator and on the host kernel.

Every (family, seed) of tests/support/scenario_gen.py runs twice, once on the
simulated kernel and once on the real one (engine.verify.check: a fresh set
of executor processes per scenario, sharing one compiled executor);
engine.verify.compare must find no difference in any statement's result,
returned address, /proc/PID/maps, resident pages or, page by page, in what
pagemap, kpagecount, kpageflags and smaps AnonHugePages say (who shares
which folio, zero pages, folio position, mapcount, exclusivity, PMD
mapping). A failure prints the scenario with line numbers and the
differences, ready to be filed. benchmarks/page_sweep.py runs thousands
more seeds.
"""

from __future__ import annotations

import pytest

from engine.verify.check import check_source
from engine.verify.real import executor_path
from tests.support.host import real_kernel_unavailable
from tests.support.scenario_gen import cases, generate

_reason = real_kernel_unavailable()
if _reason is not None:
    pytest.skip(_reason, allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def _executor() -> None:
    """Build the executor once, before the first scenario needs it."""
    executor_path()


# Findings not fixed yet, family -> (seeds, reason), each a strict xfail: a
# fix makes its case pass and the test fail until it is taken off this list.
# Every finding so far is fixed.
KNOWN: dict[str, tuple[set[int], str]] = {}


def _params() -> list[object]:
    params: list[object] = []
    for family, seed in cases():
        seeds, reason = KNOWN.get(family, (set(), ""))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if seed in seeds else []
        params.append(pytest.param(family, seed, marks=marks, id=f"{family}-{seed}"))
    return params


def numbered(source: str) -> str:
    return "\n".join(f"{i:3} | {line}" for i, line in enumerate(source.splitlines(), 1))


@pytest.mark.parametrize(("family", "seed"), _params())
def test_simulator_matches_the_kernel(family: str, seed: int) -> None:
    source = generate(seed, family)
    verdict = check_source(source)
    assert verdict.agrees, (
        f"{family}-{seed}: the simulator and Linux disagree\n\n{numbered(source)}\n\n{verdict}"
    )
