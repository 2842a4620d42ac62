"""Sparse, persistent page tables: PUD -> PMD -> PTE levels of one mm.

Models the x86-64 page-table levels below the PGD. Only populated tables
exist, so a 1 TiB mapping with nothing faulted costs nothing, and a range
walk visits only the tables that exist (as the kernel's walkers skip
pmd_none/pud_none). Tables are immutable maps: an edit copies the path to
the leaf it touches, and every earlier snapshot keeps its own tables. A PTE
table that maps consecutive small folios, as a large write fault leaves it,
is a PteRun (ours) until an edit touches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from immutables import Map, MapMutation

PTRS_PER_TABLE = 512
PMD_SHIFT = 9  # pages per PMD entry: 1 << 9
PUD_SHIFT = 18  # pages per PUD entry: 1 << 18

ZERO_PAGE = 0  # folio id of the shared zero page (my_zero_pfn)

PRESENT = "present"
SWAP = "swap"
MIGRATION = "migration"


class Pte(NamedTuple):
    """A page-table entry for one page.

    `kind` is present, swap or migration (the non-present entries the
    RELOCATE_ANON walk skips). A present entry maps page `page` of folio
    `folio`; `pmd` marks the entries of one huge PMD leaf. A swap entry
    keeps `folio` as the swap slot it names.
    """

    kind: str
    folio: int
    page: int = 0
    write: bool = False
    pmd: bool = False

    @property
    def present(self) -> bool:
        """pte_present()."""
        return self.kind == PRESENT


class PteRun:
    """A PTE table (or its entries lo ... hi - 1) mapping one page each of
    consecutive small folios: offset lo + i maps folio first + i, present,
    writable or not as `write` says.

    Ours, not a kernel object: what a large write fault leaves in a page
    table, kept as four numbers until an edit touches the table (then it
    becomes a Map of its entries). Read as a Map of offset -> Pte.
    """

    __slots__ = ("lo", "hi", "first", "write")

    def __init__(self, lo: int, hi: int, first: int, write: bool) -> None:
        self.lo, self.hi, self.first, self.write = lo, hi, first, write

    def __len__(self) -> int:
        return self.hi - self.lo

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.lo, self.hi))

    def __contains__(self, off: object) -> bool:
        return isinstance(off, int) and self.lo <= off < self.hi

    def get(self, off: int, default: Pte | None = None) -> Pte | None:
        if self.lo <= off < self.hi:
            return Pte(PRESENT, self.first + off - self.lo, 0, self.write)
        return default

    def __getitem__(self, off: int) -> Pte:
        entry = self.get(off)
        if entry is None:
            raise KeyError(off)
        return entry

    def items(self) -> Iterator[tuple[int, Pte]]:
        for off in range(self.lo, self.hi):
            yield off, Pte(PRESENT, self.first + off - self.lo, 0, self.write)

    def folio_of(self, off: int) -> int:
        """The folio id offset `off` maps."""
        return self.first + off - self.lo

    def mutate(self) -> MapMutation[int, Pte]:
        """Its entries as a Map, to edit (the table stops being a run)."""
        return Map(self.items()).mutate()


Leaf = Map[int, Pte] | PteRun  # offset in the table (vpn & 511) -> entry
Middle = Map[int, Leaf]  # pmd index -> PTE table

_OFFSET = PTRS_PER_TABLE - 1


class PageTable:
    """One mm's page tables: pud index -> pmd index -> offset -> Pte."""

    __slots__ = ("_puds", "_count")

    def __init__(self, puds: Map[int, Middle] | None = None, count: int = 0) -> None:
        self._puds: Map[int, Middle] = puds if puds is not None else Map()
        self._count = count

    def __len__(self) -> int:
        """How many entries (present or not) the tables hold."""
        return self._count

    def leaf(self, pmd_index: int) -> Leaf | None:
        """The PTE table under one PMD entry, None when pmd_none."""
        middle = self._puds.get(pmd_index >> (PUD_SHIFT - PMD_SHIFT))
        if middle is None:
            return None
        leaf: Leaf | None = middle.get(pmd_index)
        return leaf

    def get(self, vpn: int) -> Pte | None:
        """The entry for virtual page number `vpn`, None when pte_none."""
        leaf = self.leaf(vpn >> PMD_SHIFT)
        if leaf is None:
            return None
        entry: Pte | None = leaf.get(vpn & _OFFSET)
        return entry

    def pmd_indexes(self, lo: int = 0, hi: int = 1 << 40) -> list[int]:
        """The PMD indexes with a PTE table, for pages lo <= vpn < hi."""
        if hi <= lo:
            return []
        pud_lo, pud_hi = lo >> PUD_SHIFT, (hi - 1) >> PUD_SHIFT
        if pud_hi - pud_lo > len(self._puds):
            puds = sorted(k for k in self._puds if pud_lo <= k <= pud_hi)
        else:
            puds = [k for k in range(pud_lo, pud_hi + 1) if k in self._puds]
        pmd_lo, pmd_hi = lo >> PMD_SHIFT, (hi - 1) >> PMD_SHIFT
        found: list[int] = []
        for pud in puds:
            found.extend(sorted(k for k in self._puds[pud] if pmd_lo <= k <= pmd_hi))
        return found

    def items(self, lo: int = 0, hi: int = 1 << 40) -> Iterator[tuple[int, Pte]]:
        """Every entry with lo <= vpn < hi, in address order.

        Walks only the tables that exist, like walk_page_range().
        """
        for pmd in self.pmd_indexes(lo, hi):
            leaf = self.leaf(pmd)
            assert leaf is not None
            base = pmd << PMD_SHIFT
            for off in sorted(leaf):
                vpn = base | off
                if lo <= vpn < hi:
                    yield vpn, leaf[off]

    def changed_pmds(self, before: PageTable) -> list[int]:
        """The PMD indexes whose PTE table is not the one `before` had (an
        edit replaces each table it touches, so this compares identities)."""
        if self._puds is before._puds:
            return []
        found: list[int] = []
        for pud in set(self._puds) | set(before._puds):
            new, old = self._puds.get(pud), before._puds.get(pud)
            if new is old:
                continue
            new_m: Middle = new if new is not None else Map()
            old_m: Middle = old if old is not None else Map()
            found.extend(p for p in set(new_m) | set(old_m) if new_m.get(p) is not old_m.get(p))
        return found

    def edit(self) -> PageTableEditor:
        """Start a batch of edits; commit() returns the new tables."""
        return PageTableEditor(self)


class PageTableEditor:
    """A batch of edits to one PageTable, committed as a new PageTable.

    Reads see the batch's own writes. Only the tables the batch touches are
    copied; the original PageTable is never changed.
    """

    __slots__ = ("_base", "_tables", "_pending", "_count")

    def __init__(self, base: PageTable) -> None:
        self._base = base
        self._tables: dict[int, Leaf | None] = {}
        self._pending: dict[int, dict[int, Pte | None]] = {}
        self._count = len(base)

    def _leaf(self, pmd: int) -> Leaf | None:
        if pmd in self._tables:
            return self._tables[pmd]
        return self._base.leaf(pmd)

    def get(self, vpn: int) -> Pte | None:
        """The entry for `vpn` as the batch leaves it."""
        pmd, off = vpn >> PMD_SHIFT, vpn & _OFFSET
        table = self._pending.get(pmd)
        if table is not None and off in table:
            return table[off]
        leaf = self._leaf(pmd)
        return None if leaf is None else leaf.get(off)

    def set(self, vpn: int, entry: Pte | None) -> None:
        """Install `entry` at `vpn` (None clears it: pte_clear)."""
        pmd, off = vpn >> PMD_SHIFT, vpn & _OFFSET
        table = self._pending.get(pmd)
        if table is None:
            table = self._pending[pmd] = {}
        if off in table:
            old = table[off]
        else:
            leaf = self._leaf(pmd)
            old = None if leaf is None else leaf.get(off)
        self._count += (entry is not None) - (old is not None)
        table[off] = entry

    def _materialise(self, pmd: int) -> Leaf | None:
        leaf = self._leaf(pmd)
        pending = self._pending.pop(pmd, None)
        if pending:
            with (leaf if leaf is not None else Map()).mutate() as new_leaf:
                for off, entry in pending.items():
                    if entry is None:
                        new_leaf.pop(off, None)
                    else:
                        new_leaf[off] = entry
                leaf = new_leaf.finish()
        return leaf if leaf else None

    def table(self, pmd: int) -> Leaf | None:
        """The PTE table under this PMD entry as edited so far, None when pmd_none."""
        leaf = self._materialise(pmd)
        self._tables[pmd] = leaf
        return leaf

    def table_is_none(self, pmd: int) -> bool:
        """pmd_none(): no PTE table under this PMD entry (as edited so far)."""
        return self.table(pmd) is None

    def fill_table(self, pmd: int, entries: dict[int, Pte]) -> None:
        """Install a new PTE table under an empty PMD entry (pte_alloc and a
        batch of set_pte_at), keyed by offset in the table."""
        assert self.table_is_none(pmd)
        self._tables[pmd] = Map(entries)
        self._count += len(entries)

    def fill_run(self, pmd: int, table: PteRun) -> None:
        """fill_table() of entries that map consecutive small folios."""
        assert self.table_is_none(pmd)
        self._tables[pmd] = table
        self._count += len(table)

    def move_table(self, src_pmd: int, dst_pmd: int) -> None:
        """Move a whole PTE table to an empty PMD entry (move_normal_pmd)."""
        leaf = self._materialise(src_pmd)
        self._pending.pop(dst_pmd, None)
        self._tables[dst_pmd] = leaf
        self._tables[src_pmd] = None

    def commit(self) -> PageTable:
        """The edited tables; PTE tables left empty are freed."""
        for pmd in list(self._pending):
            self._tables[pmd] = self._materialise(pmd)
        by_pud: dict[int, list[int]] = {}
        for pmd in self._tables:
            by_pud.setdefault(pmd >> (PUD_SHIFT - PMD_SHIFT), []).append(pmd)
        with self._base._puds.mutate() as new_puds:
            for pud, pmds in by_pud.items():
                with new_puds.get(pud, Map()).mutate() as new_middle:
                    for pmd in pmds:
                        leaf = self._tables[pmd]
                        if leaf:
                            new_middle[pmd] = leaf
                        else:
                            new_middle.pop(pmd, None)
                    middle = new_middle.finish()
                if len(middle):
                    new_puds[pud] = middle
                else:
                    new_puds.pop(pud, None)
            puds = new_puds.finish()
        return PageTable(puds, self._count)
