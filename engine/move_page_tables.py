"""Moving a range's page tables: what a plain mremap() move does to pages.

Models mm/mremap.c:move_page_tables() and its helpers (move_ptes,
move_normal_pmd, move_huge_pmd). A module of its own, so both mremap.py
and the RELOCATE_ANON walk (relocate.py, which mremap.py imports) can call
it.
"""

from __future__ import annotations

from engine.huge_memory import split_huge_pmd
from engine.mm_constants import HPAGE_PMD_NR, PAGE_SHIFT, PMD_SIZE
from engine.mm_types import VMA
from engine.sim.kernel import Kernel
from engine.sim.trace import Lock


def move_page_tables(
    k: Kernel, old: VMA, new: VMA, old_addr: int, new_addr: int, length: int, need_rmap_locks: bool
) -> int:
    """Models mm/mremap.c:move_page_tables(): move entries, not folios.

    Only page tables that exist are visited. A huge PMD moves whole when
    both sides are 2 MiB aligned and it is fully covered (else it is split
    first); a full PTE table moves as one when both sides are aligned
    (move_normal_pmd); otherwise each entry moves (move_ptes). Folio index
    and mapping do not change.
    """
    mm = old.mm
    table = k.pagetable(mm)
    pt = k.pt(mm)
    old_vpn, new_vpn, npages = old_addr >> PAGE_SHIFT, new_addr >> PAGE_SHIFT, length >> PAGE_SHIFT
    aligned = (old_addr - new_addr) % PMD_SIZE == 0
    whole = moved = 0
    with k.lock(Lock.page_tables()):
        for pmd in table.pmd_indexes(old_vpn, old_vpn + npages):
            lo, hi = max(pmd << 9, old_vpn), min((pmd + 1) << 9, old_vpn + npages)
            leaf = table.leaf(pmd)
            assert leaf is not None
            full = hi - lo == HPAGE_PMD_NR
            head = pt.get(lo)
            if head is not None and head.pmd and not (full and aligned):
                split_huge_pmd(k, mm, lo << PAGE_SHIFT)
            dst_pmd = (lo + new_vpn - old_vpn) >> 9
            if full and aligned and pt.table_is_none(dst_pmd):
                pt.move_table(pmd, dst_pmd)
                whole += 1
                continue
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
