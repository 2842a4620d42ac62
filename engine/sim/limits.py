"""The simulated kernel's named limits: what one run may cost.

Ours. A run that would pass one stops with LimitExceeded naming it, never a
hang or an out-of-memory. The web service may choose smaller values.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds on one scenario run."""

    max_steps: int = 50_000
    """Inner steps across the whole scenario."""
    max_populated_pages: int = 1_048_576
    """Page-table entries in one process (a 4 GiB populated range: the
    1 GiB fault-and-move case of benchmarks/whole_fault_move.py, 3 x 262,144
    pages, fits)."""
    max_processes: int = 16
    """Processes alive at once (main and its forks)."""
    max_page_records: int = 2_000_000
    """Pages a `--pages` document describes: populated pages of every
    process, summed over the statements (before runs are compressed)."""


class LimitExceeded(Exception):
    """A run passed one of its named limits."""

    def __init__(self, name: str, limit: int, value: int) -> None:
        super().__init__(f"limit {name} ({limit}) exceeded: {value}")
        self.name = name
        self.limit = limit
        self.value = value
