"""Inner steps: what the kernel did, under which locks, and why.

Ours, not the kernel's: each system call is recorded as the sequence of
inner steps the kernel takes. A step names the kernel function it models,
says in one line what happened, lists the objects it created, changed or
freed, the locks held, the decisions taken (Event: the rule that decided
and the values it compared), and keeps the State after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.mm_types import State


@dataclass(frozen=True, slots=True)
class Event:
    """One decision a kernel function took, with the values it compared.

    `function` is the kernel function that decided ("is_mergeable_anon_vma"),
    `decision` a one-line sentence in the kernel's terms, `values` the
    named values the rule compared, for highlighting in the views.
    """

    function: str
    decision: str
    values: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The JSON form."""
        return {
            "function": self.function,
            "decision": self.decision,
            "values": dict(self.values),
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One inner step of one statement, and the state after it.

    `locks` are the locks the step's work ran under (taken at some point
    during it); `held` those still held when it ended, as a racing reader
    of the state after the step would find them. `acquired` is each lock
    taken during the step with the locks held as it was taken, in order:
    what lockdep sees (engine.invariants.lock_order checks it).
    """

    statement: int
    function: str
    summary: str
    locks: tuple[str, ...]
    held: tuple[str, ...]
    created: tuple[str, ...]
    changed: tuple[str, ...]
    freed: tuple[str, ...]
    events: tuple[Event, ...]
    warnings: tuple[str, ...]
    state: State = field(repr=False)
    acquired: tuple[tuple[tuple[str, ...], str], ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The JSON form, without the state."""
        return {
            "function": self.function,
            "summary": self.summary,
            "locks": list(self.locks),
            "created": list(self.created),
            "changed": list(self.changed),
            "freed": list(self.freed),
            "events": [event.as_dict() for event in self.events],
            "warnings": list(self.warnings),
        }
