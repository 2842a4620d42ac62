"""Moving a range's page tables: what a plain mremap() move does to pages.

Models mm/mremap.c:move_page_tables() and its helpers (move_ptes,
move_normal_pmd, move_huge_pmd). A module of its own, so both mremap.py
and the RELOCATE_ANON walk (relocate.py, which mremap.py imports) can call
it.
"""

from __future__ import annotations

from contextlib import ExitStack

from engine.huge_memory import split_huge_pmd
from engine.mm_constants import HPAGE_PMD_NR, PAGE_SHIFT, PMD_SIZE
from engine.mm_types import VMA
from engine.present.trace import lock_text
from engine.sim.kernel import Kernel
from engine.sim.trace import Lock


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

    Only page tables that exist are visited. A huge PMD moves whole when
    both sides are 2 MiB aligned and it is fully covered (else it is split
    first); a full PTE table moves as one when both sides are aligned
    (move_normal_pmd); otherwise each entry moves (move_ptes). Folio index
    and mapping do not change.

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
    table = k.pagetable(mm)
    pt = k.pt(mm)
    old_vpn, new_vpn, npages = old_addr >> PAGE_SHIFT, new_addr >> PAGE_SHIFT, length >> PAGE_SHIFT
    aligned = (old_addr - new_addr) % PMD_SIZE == 0
    rmap_lock = _rmap_lock(k, old, relocate_locked)
    whole = moved = 0
    for pmd in table.pmd_indexes(old_vpn, old_vpn + npages):
        lo, hi = max(pmd << 9, old_vpn), min((pmd + 1) << 9, old_vpn + npages)
        leaf = table.leaf(pmd)
        assert leaf is not None
        full = hi - lo == HPAGE_PMD_NR
        head = pt.get(lo)
        if head is not None and head.pmd and not (full and aligned):
            split_huge_pmd(k, mm, pmd << (9 + PAGE_SHIFT))
        dst_pmd = (lo + new_vpn - old_vpn) >> 9
        if full and aligned and pt.table_is_none(dst_pmd):
            huge = head is not None and head.pmd
            with ExitStack() as stack:
                _move_pgt_entry_locks(k, stack, rmap_lock, need_rmap_locks, huge, posted_series, lo)
                with k.lock(Lock.page_tables()):
                    pt.move_table(pmd, dst_pmd)
            whole += 1
            continue
        with ExitStack() as stack:
            if need_rmap_locks and rmap_lock is not None:
                stack.enter_context(k.lock(rmap_lock))
            with k.lock(Lock.page_tables()):
                for off in sorted(leaf):
                    vpn = (pmd << 9) | off
                    if lo <= vpn < hi:
                        entry = pt.get(vpn)
                        if entry is not None:
                            pt.set(vpn, None)
                            pt.set(vpn + new_vpn - old_vpn, entry)
                            moved += 1
    locks = "rmap locks taken" if need_rmap_locks or whole else "no rmap locks needed"
    k.step(
        "mm/mremap.c:move_page_tables",
        f"{moved} PTEs moved, {whole} page tables moved whole ({locks}); folios untouched",
    )
    return length


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
            " lockdep 'bad unlock balance' (posted patch 01; the 17 June follow-up)"
        )
