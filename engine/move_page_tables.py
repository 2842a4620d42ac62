"""Moving a range's page tables: what a plain mremap() move does to pages.

Models mm/mremap.c:move_page_tables() and its helpers (move_ptes,
move_normal_pmd, move_huge_pmd). A module of its own, so both mremap.py
and the RELOCATE_ANON walk (relocate.py, which mremap.py imports) can call
it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from engine.huge_memory import split_huge_pmd
from engine.mm_constants import HPAGE_PMD_NR, PAGE_SHIFT, PMD_SIZE
from engine.mm_types import VMA
from engine.pagetable import PGD_SHIFT, PMD_SHIFT, PUD_SHIFT, PageTable
from engine.present.trace import lock_text
from engine.sim.kernel import Kernel
from engine.sim.trace import Lock
from engine.vma import vmas_in_range


def move_page_tables(
    k: Kernel,
    old: VMA,
    new: VMA,
    old_addr: int,
    new_addr: int,
    length: int,
    need_rmap_locks: bool,
    relocate_locked: int | None = None,
    posted_series: bool = False,
) -> int:
    """Models mm/mremap.c:move_page_tables(): move entries, not folios.

    Only page tables that exist are visited. When both start addresses
    sit at the same offset in their PMD, each is its VMA's start with no
    VMA below it in that PMD, and the range reaches the next PMD boundary,
    both are aligned down first (try_realign_addr), so the first table can
    move whole too. A PMD table moves whole for a 1 GiB aligned extent
    whose destination has none (move_normal_pud), a huge PMD or full PTE
    table when both sides are 2 MiB aligned and the destination PMD is
    none (move_huge_pmd, move_normal_pmd); otherwise a huge PMD is split
    and each entry moves (move_ptes) into destination tables allocated for
    every source table met, even one with no page in the range (pte_alloc
    before move_ptes). The source tables stay, for the unmap of the old
    range to free (free_pgtables). Folio index and mapping do not change.

    The rmap locks (the old anon_vma's rwsem) are taken before the
    page-table locks: by move_ptes() when `need_rmap_locks`, and by
    move_pgt_entry() for whole tables always. `posted_series` runs the
    RELOCATE_ANON series' versions (patch 01): maybe_take_rmap_locks()
    skips the lock when the old anon_vma shares the root the relocation
    holds (`relocate_locked`), and move_pgt_entry() takes the locks only
    when it overrides need_rmap_locks yet always calls
    maybe_drop_rmap_locks().
    """
    mm = old.mm
    rmap_lock = _rmap_lock(k, old, relocate_locked)
    old_end = (old_addr + length) >> PAGE_SHIFT
    if _can_realign_addr(k, old, new, old_addr, new_addr, length):
        k.event(
            "try_realign_addr",
            f"{old_addr:#x} and {new_addr:#x} aligned down to their PMD: the first"
            " page table can move whole",
        )
        old_addr &= ~(PMD_SIZE - 1)
        new_addr &= ~(PMD_SIZE - 1)
    old_vpn, delta = old_addr >> PAGE_SHIFT, (new_addr - old_addr) >> PAGE_SHIFT
    aligned = delta % HPAGE_PMD_NR == 0
    table = k.pagetable(mm)
    pt = k.pt(mm)

    def pgt_entry_locks(vpn: int, huge: bool = False) -> ExitStack:
        stack = ExitStack()
        _move_pgt_entry_locks(k, stack, rmap_lock, need_rmap_locks, huge, posted_series, vpn)
        return stack

    moved_puds = _move_puds(k, mm, table, old_vpn, old_end, delta, pgt_entry_locks)
    whole = moved = 0
    for pmd in table.pmd_indexes(old_vpn, old_end):
        if pmd >> (PUD_SHIFT - PMD_SHIFT) in moved_puds:
            continue
        lo, hi = max(pmd << PMD_SHIFT, old_vpn), min((pmd + 1) << PMD_SHIFT, old_end)
        targets = sorted({(lo + delta) >> PMD_SHIFT, (hi - 1 + delta) >> PMD_SHIFT})
        for dst in targets:
            pt.alloc_pmd_table(dst >> (PUD_SHIFT - PMD_SHIFT))  # alloc_new_pmd()
        full = hi - lo == HPAGE_PMD_NR
        head = pt.get(lo)
        huge = head is not None and head.pmd
        if full and aligned and pt.table_is_none(targets[0]):
            with pgt_entry_locks(lo, huge), k.lock(Lock.page_tables()):
                pt.move_table(pmd, targets[0])
            whole += 1
            continue
        if huge:
            split_huge_pmd(k, mm, pmd << (PMD_SHIFT + PAGE_SHIFT))
        leaf = pt.leaf(pmd)
        assert leaf is not None
        with ExitStack() as stack:
            if need_rmap_locks and rmap_lock is not None:
                stack.enter_context(k.lock(rmap_lock))
            with k.lock(Lock.page_tables()):
                for dst in targets:
                    pt.alloc_table(dst)  # pte_alloc(), pages or not
                for off in sorted(leaf):
                    vpn = (pmd << PMD_SHIFT) | off
                    if lo <= vpn < hi:
                        pt.set(vpn, None)
                        pt.set(vpn + delta, leaf[off])
                        moved += 1
    locks = "rmap locks taken" if need_rmap_locks or whole else "no rmap locks needed"
    k.step(
        "mm/mremap.c:move_page_tables",
        f"{moved} PTEs moved, {whole} page tables moved whole ({locks}); folios untouched",
    )
    return length


def _can_realign_addr(
    k: Kernel, old: VMA, new: VMA, old_addr: int, new_addr: int, length: int
) -> bool:
    """Models mm/mremap.c:can_realign_addr() for PMD_MASK (not for the
    stack): the same offset in both PMDs, the range reaching the next PMD
    boundary, and on both sides the address its VMA's start with no VMA
    between it and the PMD boundary below (can_align_down)."""
    offset = old_addr & (PMD_SIZE - 1)
    if length < PMD_SIZE - offset or not offset or offset != new_addr & (PMD_SIZE - 1):
        return False
    return all(
        vma.vm_start == addr and not vmas_in_range(k.state, vma.mm, addr - offset, addr)
        for vma, addr in ((old, old_addr), (new, new_addr))
    )


def _move_puds(
    k: Kernel,
    mm: str,
    table: PageTable,
    lo: int,
    hi: int,
    delta: int,
    lock: Callable[[int], ExitStack],
) -> set[int]:
    """The PUD level of move_page_tables() for pages lo <= vpn < hi moving
    by `delta` pages: each extent whose source has a PMD table gets a PUD
    table at its destination (alloc_new_pud); a whole 1 GiB extent moves
    its PMD table as one when the destination has none (move_normal_pud,
    under move_pgt_entry()'s locks, `lock(vpn)`). Returns the pud indexes
    moved so."""
    pt = k.pt(mm)
    moved: set[int] = set()
    for pud in table.pud_indexes(lo, hi):
        start, end = max(pud << PUD_SHIFT, lo), min((pud + 1) << PUD_SHIFT, hi)
        for dst in range((start + delta) >> PUD_SHIFT, ((end - 1 + delta) >> PUD_SHIFT) + 1):
            pt.alloc_pud_table(dst >> (PGD_SHIFT - PUD_SHIFT))
        dst_pud = (start + delta) >> PUD_SHIFT
        if end - start != 1 << PUD_SHIFT or delta % (1 << PUD_SHIFT):
            continue
        if not pt.pmd_table_is_none(dst_pud):
            continue
        with lock(start), k.lock(Lock.page_tables()):
            for pmd in table.pmd_indexes(start, end):
                pt.move_table(pmd, pmd + (delta >> PMD_SHIFT))
            pt.free_pmd_table(pud)
            pt.alloc_pmd_table(dst_pud)
        k.event("move_normal_pud", f"the PMD table of {start << PAGE_SHIFT:#x} moves whole")
        moved.add(pud)
    return moved


def _rmap_lock(k: Kernel, old: VMA, relocate_locked: int | None) -> Lock | None:
    """Models the series' maybe_take_rmap_locks() choice (mainline's
    take_rmap_locks() where nothing is relocate_locked): the old anon_vma's
    rwsem, unless it is the root the relocation already holds
    (has_shared_anon_vma(): taking it again would deadlock)."""
    if old.anon_vma is None or k.state.rmap_model == "cow_context":
        return None
    root = k.anon_vma(old.anon_vma).root
    if root == relocate_locked:
        k.event(
            "maybe_take_rmap_locks",
            f"has_shared_anon_vma(): old anon_vma#{old.anon_vma} has root anon_vma#{root},"
            " which the relocation holds: not taken again",
        )
        return None
    return Lock.anon_vma_write(root)


def _move_pgt_entry_locks(
    k: Kernel,
    stack: ExitStack,
    rmap_lock: Lock | None,
    need_rmap_locks: bool,
    huge: bool,
    posted_series: bool,
    lo: int,
) -> None:
    """Models move_pgt_entry()'s rmap locking for a NORMAL_PMD (whole table)
    or HPAGE_PMD (huge PMD) move. Mainline: locks if need_rmap_locks, and
    always for a whole table. The series (patch 01): locks only when it
    overrides need_rmap_locks (a whole table moved with it false), but
    maybe_drop_rmap_locks() runs whenever need_rmap_locks is true, so with
    need_rmap_locks already set it releases a lock it never took."""
    if rmap_lock is None:
        return
    if not posted_series:
        if need_rmap_locks or not huge:
            stack.enter_context(k.lock(rmap_lock))
        return
    if not need_rmap_locks and not huge:
        k.event(
            "move_pgt_entry",
            "need_rmap_locks overridden for a whole page table: maybe_take_rmap_locks()",
        )
        stack.enter_context(k.lock(rmap_lock))
    elif need_rmap_locks:
        k.event(
            "move_pgt_entry",
            f"need_rmap_locks already set: nothing taken, yet maybe_drop_rmap_locks()"
            f" releases {lock_text(rmap_lock)} (at {lo << PAGE_SHIFT:#x})",
        )
        k.warn(
            f"move_pgt_entry() releases {lock_text(rmap_lock)}, which it does not hold:"
            " lockdep 'bad unlock balance' (patch 01 as posted)"
        )
