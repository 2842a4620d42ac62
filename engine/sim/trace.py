"""Inner steps: what the kernel did, under which locks, and why.

Ours, not the kernel's: each system call is recorded as the sequence of
inner steps the kernel takes. A step names the kernel function it models,
says in one line what happened, lists the objects it created, changed or
freed (ObjRef), the locks it ran under (Lock), the decisions taken (Event:
the rule that decided and the values it compared), and keeps the State
after it. Everything here is data; engine.present makes the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, NamedTuple

from engine.mm_types import State

ObjKind = Literal["vma", "anon_vma", "folio", "cow_context"]


class ObjRef(NamedTuple):
    """One kernel object a step touched: its kind and its id.

    `str()` is the JSON contract's form ("vma:3"); `label` the form the
    kernel's messages use ("vma#3").
    """

    kind: ObjKind
    id: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def label(self) -> str:
        return f"{self.kind}#{self.id}"


class Refs:
    """The objects a step touched, in order: each an ObjRef, or a range of
    folio ids for folios that came or changed together (a FolioRun's).

    Ours: reads as a tuple of ObjRef (iteration, len, `in`), without
    making an ObjRef for each folio of a range until one is asked for.
    """

    __slots__ = ("items",)

    def __init__(self, items: tuple[ObjRef | range, ...] = ()) -> None:
        self.items = items

    def __iter__(self) -> Iterator[ObjRef]:
        for item in self.items:
            if isinstance(item, range):
                for ident in item:
                    yield ObjRef("folio", ident)
            else:
                yield item

    def __len__(self) -> int:
        return sum(len(item) if isinstance(item, range) else 1 for item in self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, ObjRef):
            return False
        for item in self.items:
            if isinstance(item, range):
                if ref.kind == "folio" and ref.id in item:
                    return True
            elif item == ref:
                return True
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Refs) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Refs({self.items!r})"

    def folio_ids(self) -> list[range]:
        """The folios among them, as ranges of ids (one id: a range of one)."""
        return [
            item if isinstance(item, range) else range(item.id, item.id + 1)
            for item in self.items
            if isinstance(item, range) or item.kind == "folio"
        ]


class LockKind(Enum):
    """The kinds of lock the modelled kernel functions take (the value is
    the name the text uses)."""

    MMAP_LOCK = "mmap_lock"
    VMA_WRITE_LOCK = "vma write lock"
    ANON_VMA_RWSEM = "anon_vma rwsem"
    PAGE_TABLE_LOCKS = "page-table locks"
    PMD_LOCK = "pmd lock"
    PTE_LOCK = "PTE lock (spinlock)"
    FOLIO_LOCK = "folio lock"

    # Members are singletons: hash by identity (Enum hashes the name in
    # Python, and a walk hashes a lock per folio).
    __hash__ = object.__hash__


LockMode = Literal["read", "write", ""]


class Lock(NamedTuple):
    """One lock: its kind, what it locks, and how (read or write, or "" for
    a lock with one mode).

    `target` is the object (an ObjRef), the mm's process name for
    mmap_lock, the address of the range for a page-table lock, or None for
    the page-table locks of a move's two tables together; a range of folio
    ids for the folio locks of those folios taken one after another, each
    released before the next (ours: the walk over a FolioRun, one record).
    """

    kind: LockKind
    target: ObjRef | str | int | range | None = None
    mode: LockMode = ""

    @classmethod
    def mmap(cls, process: str, mode: LockMode) -> Lock:
        """mmap_read_lock()/mmap_write_lock() of a process's mm."""
        return cls(LockKind.MMAP_LOCK, process, mode)

    @classmethod
    def vma_write(cls, vma: int) -> Lock:
        """vma_start_write()."""
        return cls(LockKind.VMA_WRITE_LOCK, ObjRef("vma", vma), "write")

    @classmethod
    def anon_vma_write(cls, root: int) -> Lock:
        """anon_vma_lock_write() of an anon_vma tree's root."""
        return cls(LockKind.ANON_VMA_RWSEM, ObjRef("anon_vma", root), "write")

    @classmethod
    def folio(cls, folio: int) -> Lock:
        """folio_lock()."""
        return cls(LockKind.FOLIO_LOCK, ObjRef("folio", folio))

    @classmethod
    def folios_in_turn(cls, ids: range) -> Lock:
        """folio_lock() and folio_unlock() of each folio of `ids` in turn."""
        return cls(LockKind.FOLIO_LOCK, ids)

    @property
    def taken(self) -> int:
        """How many times the lock is taken: len(ids) for folios_in_turn."""
        return len(self.target) if isinstance(self.target, range) else 1

    def first(self) -> Lock:
        """The first lock taken (the first folio's, for folios_in_turn)."""
        if isinstance(self.target, range):
            return Lock.folio(self.target.start)
        return self

    @classmethod
    def pmd(cls, addr: int) -> Lock:
        """pmd_lock() of the PMD mapping `addr`."""
        return cls(LockKind.PMD_LOCK, addr)

    @classmethod
    def pte_table(cls, addr: int) -> Lock:
        """pte_offset_map_lock() of the PTE table starting at `addr`."""
        return cls(LockKind.PTE_LOCK, addr)

    @classmethod
    def page_tables(cls) -> Lock:
        """The old and new page-table locks move_page_tables() takes together."""
        return cls(LockKind.PAGE_TABLE_LOCKS)


class Rule(NamedTuple):
    """The rule that decided: the kernel function and the check in it
    ("is_mergeable_vma", "vm_flags"); `check` is "" when the function's
    answer as a whole decided."""

    function: str
    check: str = ""


class Unfinished(NamedTuple):
    """Where the modelled code is a proposal its author has not finished
    (a TODO in the COW-context branch): the place, the branch's own comment
    there (None where it has none), and what the model does instead."""

    where: str
    comment: str | None
    modelled: str


@dataclass(frozen=True, slots=True)
class Event:
    """One decision a kernel function took, with the values it compared.

    `function` is the kernel function that decided ("is_mergeable_anon_vma"),
    `decision` a one-line sentence in the kernel's terms; `rule` the rule
    that decided and `candidate` the object it judged, when the decision is
    a verdict on one; `values` the other named values the rule compared,
    for highlighting in the views; `unfinished` marks a decision taken
    where the proposal being modelled is unfinished.
    """

    function: str
    decision: str
    values: tuple[tuple[str, str], ...] = ()
    rule: Rule | None = None
    candidate: ObjRef | None = None
    unfinished: Unfinished | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One inner step of one statement, and the state after it.

    `locks` are the locks the step's work ran under (taken at some point
    during it); `held` those still held when it ended, as a racing reader
    of the state after the step would find them. `acquired` is each lock
    taken during the step with the locks held as it was taken, in order:
    what lockdep sees (engine.invariants.lock_order checks it).
    `created`, `changed` and `freed` are Refs: a FolioRun's folios that
    came or changed together are one range of ids there.
    """

    statement: int
    function: str
    summary: str
    locks: tuple[Lock, ...]
    held: tuple[Lock, ...]
    created: Refs
    changed: Refs
    freed: Refs
    events: tuple[Event, ...]
    warnings: tuple[str, ...]
    state: State = field(repr=False)
    acquired: tuple[tuple[tuple[Lock, ...], Lock], ...] = ()

    def folios_touched(self) -> list[range]:
        """The ids of the folios the step created, changed or freed, as ranges."""
        return [*self.created.folio_ids(), *self.changed.folio_ids(), *self.freed.folio_ids()]
