"""What runs a scenario's calls: the simulated kernel or the real one.

The scenario interpreter evaluates expressions and hands each call, store and
load to a backend. `engine.sim.simulation.Simulation` models Linux 6.18 step by step;
`engine.verify.real.RealMachine` runs the same calls for real on the host so
the two can be compared (mainline calls only).
"""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CallResult:
    """One statement's outcome, as the JSON contract reports it.

    `result` is "ok", an errno name ("EINVAL") or "SIGSEGV". `value` is the
    call's C return value as a signed integer (-1 on failure, the address
    for mmap/mremap, 0 for munmap), or None for a store or load.
    """

    result: str
    value: int | None


class Backend(Protocol):
    """The calls a scenario can make, each in the named process."""

    def syscall(self, process: str, name: str, args: list[int]) -> CallResult:
        """Run a known call (mmap, munmap, mremap, mprotect, madvise, memset,
        pin, unpin, ...) with evaluated 64-bit unsigned arguments."""
        ...

    def fork(self, parent: str, child: str) -> CallResult:
        """Fork `parent`; the new process is named `child`."""
        ...

    def store(self, process: str, addr: int, value: int) -> CallResult:
        """Write one byte: a write fault if the page is not writable yet."""
        ...

    def load(self, process: str, addr: int) -> CallResult:
        """Read one byte: a read fault maps the zero page if nothing is there."""
        ...

    def maps(self) -> dict[str, list[str]]:
        """Every live process's VMAs as /proc/PID/maps prints them."""
        ...

    def procmap_query(self, process: str, addr: int) -> tuple[int, int] | None:
        """The VMA covering addr, (start, end), as the PROCMAP_QUERY ioctl on
        the process's /proc/PID/maps answers with no flags; None for ENOENT."""
        ...

    def resident(self) -> dict[str, dict[str, int]]:
        """Every live process's resident pages per VMA ("start-end" ->
        pages), as /proc/PID/smaps counts Rss (the zero page not counted)."""
        ...
