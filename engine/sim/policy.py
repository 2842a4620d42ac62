"""How the RELOCATE_ANON walk behaves where the posted code, its changelog
and its review differ.

Ours: each policy is the set of decisions it changes in engine.relocate,
named as a scenario chooses it (`// @policy NAME`). "posted" is the v1 code
as posted (9 June 2025).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Policy:
    """One way the walk may go, as the decisions it takes."""

    name: str
    description: str
    pin_check: bool = True
    """folio_maybe_dma_pinned() is checked at all (David Hildenbrand: it is
    racy against GUP-fast, so drop it and move pinned folios too)."""
    pinned_aborts: bool = False
    """A pinned folio makes the forward walk fail (the RFC v2 changelog);
    otherwise it is skipped yet counted a success (as posted)."""
    undo_relocated_only: bool = False
    """The undo walk reverts exactly the folios the walk relocated, whatever
    raced since (Lorenzo Stoakes: hold each relocated folio)."""
    split_on_failure: bool = False
    """A failed walk splits the VMA where it stopped instead of undoing
    (Harry Yoo)."""
    uninitialised_new_vma: Literal["null", "stale"] = "null"
    """What move_vma() reads from the new_vma that patch 02's early return
    in copy_vma_and_data() leaves unset: NULL where the stack is zeroed
    (CONFIG_INIT_STACK_ALL_ZERO, Kconfig's default when the compiler
    supports it), or a stale non-NULL pointer (CONFIG_INIT_STACK_NONE)."""


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy(
            "posted",
            "the v1 code as posted: a pinned folio is skipped yet counted a success;"
            " the undo re-runs the walk's checks and its result is ignored",
        ),
        Policy(
            "pinned_aborts",
            "a pinned folio aborts the walk, as the RFC v2 changelog says;"
            " the undo is the posted one",
            pinned_aborts=True,
        ),
        Policy(
            "no_pin_check",
            "no racy pin check: pinned folios are moved too (David Hildenbrand)",
            pin_check=False,
        ),
        Policy(
            "isolate",
            "pinned aborts; each relocated folio is held, so the undo reverts exactly"
            " those, whatever raced (Lorenzo Stoakes)",
            pinned_aborts=True,
            undo_relocated_only=True,
        ),
        Policy(
            "split",
            "pinned aborts; the VMA is split where the walk failed instead of undoing (Harry Yoo)",
            pinned_aborts=True,
            split_on_failure=True,
        ),
        Policy(
            "posted_stale_stack",
            "the posted code built without stack zeroing: move_vma() finds a stale"
            " non-NULL new_vma after patch 02's early -EFAULT return",
            uninitialised_new_vma="stale",
        ),
    )
}
POSTED = POLICIES["posted"]
