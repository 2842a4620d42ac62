"""The gallery as learning paths: the packaged scenarios in the order a teacher
would take them, each with a thumbnail of its key moment and a line on what
you will see there.

The paths name scenarios by slug; one the paths do not name (a new
scenario) is listed after them, so none is ever hidden. The key moment is
the first step where the rmap check fails without a lock to hide it (the
bug the scenario is about), else the run's last step.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel

from engine.gallery import GalleryEntry
from engine.invariants import check
from engine.mm_types import RmapModel
from engine.sim.simulation import Run


class Stop(NamedTuple):
    slug: str
    see: str
    """What you will see, in one line."""


class LearningPath(NamedTuple):
    title: str
    intro: str
    stops: tuple[Stop, ...]


PATHS: tuple[LearningPath, ...] = (
    LearningPath(
        "1. VMAs and merging",
        "What a VMA is, when two of them are one, and why vm_pgoff and anon_vma decide it.",
        (
            Stop("merge_on_mprotect", "One VMA split in three by mprotect(), then merged back."),
            Stop("shrink_and_grow", "mremap() shrinking, growing in place, then moving to grow."),
        ),
    ),
    LearningPath(
        "2. mremap() moves",
        "A move keeps what the folios depend on: the VMA's vm_pgoff and its anon_vma.",
        (
            Stop(
                "unfaulted_move_merges",
                "A VMA with no pages moves next to another and merges with it.",
            ),
            Stop(
                "faulted_move_no_merge",
                "A written VMA moves next to another and stays apart: its pgoff and anon_vma.",
            ),
            Stop("move_away_and_back", "A piece moved away and back: the pieces merge again."),
            Stop("multi_vma_move", "One mremap() (6.17+) moving several VMAs at once."),
            Stop("dontunmap", "MREMAP_DONTUNMAP: the pages move, the old VMA stays, empty."),
        ),
    ),
    LearningPath(
        "3. fork() and copy-on-write",
        "Why a child's VMA is chained to its parent's anon_vma, and what a COW write does.",
        (
            Stop(
                "fork_and_cow",
                "The child's anon_vma under the parent's; a write copies one folio.",
            ),
        ),
    ),
    LearningPath(
        "4. The MREMAP_RELOCATE_ANON series (v1, June 2025)",
        "Lorenzo Stoakes's proposal: rewrite each moved folio's mapping and index, so a moved"
        " faulted VMA can merge.",
        (
            Stop(
                "relocate_then_merge",
                "The folios get the new anon_vma and index; the moved VMA merges.",
            ),
            Stop(
                "relocate_already_mergeable",
                "Nothing to relocate: an unfaulted move merges as it always did.",
            ),
            Stop(
                "relocate_fragmentation",
                "Moving away and back, again and again: VMA and anon_vma counts, with and without.",
            ),
            Stop("relocate_dontunmap", "Relocation with MREMAP_DONTUNMAP: the source left empty."),
            Stop("relocate_large_folio", "A THP relocated whole, and one the walk cannot take."),
        ),
    ),
    LearningPath(
        "5. Its failures, and what the review proposed",
        "Where the walk refuses, skips or cannot undo; the options reviewers offered instead.",
        (
            Stop("relocate_forked_refused", "After fork the folios may be shared: refused."),
            Stop("relocate_must_shared", "MUST on MAP_SHARED memory: EFAULT before any move."),
            Stop(
                "relocate_swap_entry",
                "A swap entry skipped by the walk comes back with the new index.",
            ),
            Stop(
                "relocate_pinned_folio",
                "A pinned folio skipped, yet a success: rmap can no longer find it.",
            ),
            Stop(
                "relocate_gup_race_policies",
                "The same pinned move under each policy; put them side by side in compare.",
            ),
            Stop(
                "relocate_large_folio_misaligned",
                "A THP met mid-folio: its index set 256 pages off, small folios left behind.",
            ),
            Stop(
                "relocate_gup_race_undo", "A GUP-fast pin during the undo: the undo itself fails."
            ),
            Stop(
                "relocate_split_fails",
                "The split a GUP-fast pin breaks mid-walk: the failure that ended the series.",
            ),
        ),
    ),
    LearningPath(
        "6. After anon_vma: the COW-context proposal (a4ac1966)",
        "The rework the series' author turned to: one COW context per mm in the fork tree,"
        " remaps recorded as offsets, no folio rewritten. A proof of concept (branch"
        " project/cow-context at a4ac1966), not a kernel anyone runs; open each scenario"
        " under rmap model anon_vma too, and compare (path 2's move_away_and_back as well).",
        (
            Stop(
                "cow_fragmentation",
                "Pieces moved away and back stay apart: the pgoff rule stands.",
            ),
            Stop(
                "cow_fork_then_mremap",
                "fork, then mremap in the child: the walk goes down the fork tree.",
            ),
            Stop(
                "cow_fork_chain_exits",
                "A fork chain with exits: contexts outlive their mm, then cascade away.",
            ),
            Stop(
                "cow_unfaulted_absorbs_faulted",
                "An unfaulted VMA takes in a faulted one: the stub dup_anon_vma() loses it.",
            ),
            Stop(
                "cow_relocate_flag",
                "MREMAP_RELOCATE_ANON is EINVAL there: the plain move records an offset.",
            ),
        ),
    ),
)

SERIES_STORY = (
    "The series was posted in June 2025 and reached linux-next, but was never merged."
    " In July 2025 its author dropped it: the approach \"wasn't workable, and was far too"
    ' fragile" (Lorenzo Stoakes, 7 July 2025, to Hugh Dickins). He had handled swap-cache'
    " folios and migration entries and split folios up front, but a folio split could become"
    " unavoidable midway through the operation, where a racing GUP-fast reference breaks it;"
    ' further progress "will require a more ambitious rework of the anon_vma stuff".'
    " Path 5 shows those failures; its last scenario is exactly that split."
)


class Card(BaseModel):
    slug: str
    title: str
    note: str
    order: int
    see: str
    key_step: int
    """The inner step of the key moment (the thumbnail's)."""
    rmap_model: RmapModel = "anon_vma"
    """The rmap model the scenario ran under as written (its `// @rmap` line)."""

    @property
    def other_model(self) -> RmapModel:
        return "anon_vma" if self.rmap_model == "cow_context" else "cow_context"


class PathView(BaseModel):
    title: str
    intro: str
    cards: list[Card]


def key_step(run: Run) -> int:
    """The first step where the rmap check fails in the open, else the last step."""
    for i, step in enumerate(run.steps):
        if any(v.kind == "rmap" and not v.locked for v in check(step.state, step.held)):
            return i
    return max(0, len(run.steps) - 1)


def learning_paths(entries: tuple[GalleryEntry, ...], runs: dict[str, Run]) -> list[PathView]:
    """The paths, then every scenario they do not name; `runs` are their runs by slug."""
    by_slug = {e.slug: e for e in entries}
    views = []
    named = set()
    for path in PATHS:
        cards: list[Card] = []
        for stop in path.stops:
            entry = by_slug.get(stop.slug)
            if entry is None:
                continue
            named.add(stop.slug)
            cards.append(_card(entry, len(cards) + 1, stop.see, runs.get(entry.slug)))
        if cards:
            views.append(PathView(title=path.title, intro=path.intro, cards=cards))
    rest = [e for e in entries if e.slug not in named]
    if rest:
        views.append(
            PathView(
                title="More scenarios",
                intro="Scenarios no path takes yet.",
                cards=[
                    _card(e, i + 1, e.note.split(". ")[0], runs.get(e.slug))
                    for i, e in enumerate(rest)
                ],
            )
        )
    return views


def _card(entry: GalleryEntry, order: int, see: str, run: Run | None) -> Card:
    return Card(
        slug=entry.slug,
        title=entry.title,
        note=entry.note,
        order=order,
        see=see,
        key_step=0 if run is None else key_step(run),
        rmap_model="anon_vma" if run is None else run.rmap_model,
    )
