"""One scenario on both kernels, compared: what `verify`, the differential
tests and the page sweep share.

Ours. `check_source()` runs scenario text on the simulated kernel and on
this machine's, and returns every difference (page by page when asked),
why the simulation stopped early, or the simulator's crash with the last
frames of its traceback, so a finding always comes with its scenario.
`shrink()` drops statements while the finding stays the same kind: the
smallest scenario that still shows it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.scenario.errors import ScenarioError
from engine.scenario.parse import parse
from engine.sim.simulation import run_source
from engine.verify.compare import Difference, compare
from engine.verify.real import RealMachine
from engine.verify.steps import recorded, simulated


@dataclass(frozen=True)
class Verdict:
    """What one comparison found; `agrees` when it found nothing."""

    differences: list[Difference] = field(default_factory=list)
    stopped: str | None = None
    crash: str | None = None

    @property
    def agrees(self) -> bool:
        return not self.differences and self.stopped is None and self.crash is None

    @property
    def kind(self) -> str:
        """The finding's kind: "crash", "stopped", or the first difference's
        ("pages", "maps", "result", ...). Shrinking keeps it."""
        if self.crash is not None:
            return "crash"
        if self.differences:
            return self.differences[0].what.partition(":")[0]
        return "stopped" if self.stopped is not None else "agrees"

    def __str__(self) -> str:
        parts = []
        if self.crash is not None:
            parts.append(f"the simulator crashed:\n{self.crash}")
        if self.stopped is not None:
            parts.append(f"the simulation stopped early: {self.stopped}")
        parts += [str(d) for d in self.differences]
        return "\n".join(parts)


KERNEL_RERUNS = 2
"""How often a scenario the engine disagrees on runs again on the host: a
few outcomes depend on timing the model cannot see (a THP split under
MADV_PAGEOUT fails while a per-CPU LRU batch holds a reference), so the
engine agrees when the kernel produces its outcome in one of the runs."""


def check_source(source: str, pages: bool = True) -> Verdict:
    """Run `source` on both kernels and compare them after every statement
    (the kernel again, up to KERNEL_RERUNS times, while they differ)."""
    try:
        result = run_source(source)
    except ScenarioError:
        raise
    except Exception as err:  # noqa: BLE001 - any crash is a finding, reported with the scenario
        return Verdict(crash="".join(traceback.format_exception(err)[-6:]))
    model = simulated(result, pages)
    differences: list[Difference] = []
    for _ in range(1 + KERNEL_RERUNS):
        with RealMachine() as machine:
            differences = compare(model, recorded(parse(source), machine, pages))
        if not differences:
            break
    return Verdict(differences, result.error)


def shrink(source: str, still: Callable[[str], bool]) -> str:
    """Drop statements (lines) one at a time, keeping each drop after which
    `still(text)` holds, until no single line can go. A text that no longer
    parses does not hold."""
    lines = source.splitlines()
    changed = True
    while changed:
        changed = False
        for i in range(len(lines) - 1, -1, -1):
            candidate = lines[:i] + lines[i + 1 :]
            text = "\n".join(candidate) + "\n"
            try:
                holds = still(text)
            except ScenarioError:
                holds = False
            if holds:
                lines = candidate
                changed = True
    return "\n".join(lines) + "\n"


def smallest(source: str, verdict: Verdict, pages: bool = True) -> str:
    """The shortest scenario showing a finding of the same kind as `verdict`."""
    return shrink(source, lambda text: check_source(text, pages).kind == verdict.kind)
