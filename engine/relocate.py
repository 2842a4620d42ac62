"""The MREMAP_RELOCATE_ANON folio walk (v1 series, 9 June 2025, never merged).

Models the series' relocate_anon_folios() and its helpers in mm/mremap.c
(patches 01-03): under the new anon_vma's write lock, per PMD extent of the
old range under the page-table lock, each anonymous folio is locked and its
mapping and index rewritten to the new VMA's anon_vma and linear index.
Where the posted code, its changelog and its review disagree, `k.policy`
chooses (engine.sim.policy); "posted" is the code as posted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from engine.gup import RACE_BEFORE_UNDO, RACE_BEFORE_WALK, RACE_DURING_SPLIT, pin_one
from engine.huge_memory import split_folio, split_huge_pmd
from engine.mm_constants import HPAGE_PMD_NR, PAGE_SHIFT
from engine.mm_types import VM_HUGETLB, VM_SPECIAL, VMA, Folio, State
from engine.move_page_tables import move_page_tables
from engine.pagemap import linear_page_index
from engine.pagetable import PRESENT, ZERO_PAGE, PteRun
from engine.rmap import anon_vma_clone
from engine.sim.kernel import Kernel
from engine.sim.trace import Lock, Rule
from engine.vma import VMG, find_vma_prev, vma_merge_existing_range

# Folio-by-folio steps for walks up to this many pages; larger walks get
# one step per page table, and a folio step only where something happens.
SMALL_WALK_PAGES = 64


def should_relocate_anon(k: Kernel, vma: VMA, must: bool) -> tuple[bool, bool]:
    """Models the series' should_relocate_anon(): (relocate, -EFAULT?).

    Under MREMAP_MUST_RELOCATE_ANON (`must`) the first three refusals are
    fatal; an unfaulted source is a harmless no-op either way.
    """
    fatal = must
    fn = "should_relocate_anon"
    tail = " (fatal under MUST: -EFAULT)" if fatal else " (falls back to a plain move)"
    if vma.vm_flags & (VM_SPECIAL | VM_HUGETLB):
        k.event(fn, "refused: VM_SPECIAL or hugetlb" + tail, rule=Rule(fn, "VM_SPECIAL|VM_HUGETLB"))
        return False, fatal
    if not vma.is_anonymous():
        k.event(
            fn,
            "refused: not anonymous (MAP_SHARED is shmem)" + tail,
            rule=Rule("vma_is_anonymous"),
        )
        return False, fatal
    shared, why = vma_maybe_has_shared_anon_folios(k.state, vma)
    if shared:
        k.event(
            fn,
            f"refused: {why}" + tail,
            rule=Rule("vma_maybe_has_shared_anon_folios"),
            chains=len(vma.avc),
        )
        return False, fatal
    if vma.anon_vma is None:
        k.event(
            fn,
            "no anon_vma: unfaulted, nothing to relocate (not an error)",
            rule=Rule(fn, "!vma->anon_vma"),
        )
        return False, False
    k.event(fn, f"relocate: vma#{vma.id} is faulted, its folios are not shared", rule=Rule(fn))
    return True, False


def vma_maybe_has_shared_anon_folios(state: State, vma: VMA) -> tuple[bool, str]:
    """Models the series' vma_maybe_has_shared_anon_folios(): a forked child
    (more than one anon_vma_chain) or a forked parent (its anon_vma has
    children beyond its own self-reference) may share folios."""
    if vma.anon_vma is None:
        return False, "no anon_vma"
    if len(vma.avc) != 1:
        return True, f"vma#{vma.id} is a fork child ({len(vma.avc)} anon_vma_chains)"
    av = state.anon_vmas[vma.anon_vma]
    expected = 1 if av.root == av.id else 0
    if av.num_children > expected:
        return True, (
            f"anon_vma#{av.id} has num_children {av.num_children} > {expected} (a forked parent)"
        )
    return False, "not forked"


@dataclass
class Outcome:
    """How the relocating move ended: moved, and the VMA it ended in."""

    moved: bool
    new_vma: VMA


@dataclass
class Walk:
    """Models the series' struct pagetable_move_control for the walk."""

    old: VMA
    new: VMA
    old_addr: int
    new_addr: int
    length: int
    undo: bool = False
    failed_at: int | None = None
    relocated: list[int] = field(default_factory=list)


def relocate_and_move(k: Kernel, walk: Walk) -> Outcome:
    """Models the series' relocating part of copy_vma_and_data(): lock the
    new anon_vma (lock_new_anon_vma()), walk and relocate, move the page
    tables, unlock, and try vma_merge_existing_range() on the new VMA."""
    old, new = walk.old, walk.new
    assert new.anon_vma is not None
    root = k.anon_vma(new.anon_vma).root
    with k.lock(Lock.anon_vma_write(root)):
        k.event(
            "lock_new_anon_vma",
            f"anon_vma#{root} write-locked, lockdep subclass 1 (lock_set_subclass);"
            " the old anon_vma is not locked (forks need the mmap write lock)",
        )
        ok = relocate_anon_folios(k, walk)
        _race(k, walk, RACE_BEFORE_UNDO)
        if not ok and k.policy.split_on_failure:
            kept, rest = _split_instead_of_undo(k, walk)
            if kept is None:
                return Outcome(True, rest)
            new = kept
        elif not ok:
            walk.undo = True
            relocate_anon_folios(k, walk)
            k.step(
                "mm/mremap.c:relocate_anon_folios",
                "undo walk done (its result is not checked: assumed infallible)",
            )
            return Outcome(False, k.vma(new.id))
        else:
            move_page_tables(
                k,
                old,
                k.vma(new.id),
                walk.old_addr,
                walk.new_addr,
                walk.length,
                True,
                relocate_locked=root,
                posted_series=True,
            )
    new = k.vma(new.id)
    vmg = VMG.of(new, new.vm_start, new.vm_end, prev=find_vma_prev(k.state, new))
    merged = vma_merge_existing_range(k, vmg, "vma_merge_existing_range")
    k.step(
        "mm/vma.c:vma_merge_existing_range",
        f"relocated vma merged into vma#{merged.id}" if merged else "relocated vma did not merge",
    )
    return Outcome(True, merged or k.vma(new.id))


def _race(k: Kernel, walk: Walk, when: int, vpns: range | None = None) -> None:
    """Let an injected GUP-fast pin land, if this is its moment (and, for a
    moment at a page or folio, if it is aimed inside `vpns`)."""
    race = k.gup_race
    if race is None or race.when != when or race.mm != walk.old.mm or walk.undo:
        return
    if vpns is not None and race.addr >> PAGE_SHIFT not in vpns:
        return
    lo = walk.old_addr
    if not lo <= race.addr < lo + walk.length:
        return
    k.gup_race = None
    folio = pin_one(k, walk.old.mm, race.addr)
    k.event(
        "gup_fast",
        f"a racing GUP-fast pin lands on {race.addr:#x}"
        + (f" (folio#{folio})" if folio else " (nothing mapped)"),
    )


def relocate_anon_folios(k: Kernel, walk: Walk) -> bool:
    """Models the series' __relocate_anon_folios(): the walk (or its undo).

    Extents come from the OLD range (get_old_extent). A huge PMD must be
    fully covered, else the walk fails; one fully covered and aligned on
    both sides is relocated whole (the huge zero PMD is left alone),
    otherwise split. Then each PTE under the page-table lock. Returns False
    on the first failure.
    """
    mm = walk.old.mm
    table = k.pagetable(mm)
    start_vpn = walk.old_addr >> PAGE_SHIFT
    end_vpn = start_vpn + (walk.length >> PAGE_SHIFT)
    small = walk.length >> PAGE_SHIFT <= SMALL_WALK_PAGES
    what = "undo" if walk.undo else "walk"
    for pmd in table.pmd_indexes(start_vpn, end_vpn):
        lo, hi = max(pmd << 9, start_vpn), min((pmd + 1) << 9, end_vpn)
        head = k.pt(mm).get(lo)
        if head is not None and head.pmd and head.kind == PRESENT:
            if hi - lo != HPAGE_PMD_NR:
                k.event(
                    "relocate_anon_folios",
                    f"PMD THP at {lo << PAGE_SHIFT:#x} only partly in range: fail",
                )
                walk.failed_at = lo
                k.step(
                    "mm/mremap.c:__relocate_anon_folios",
                    f"{what} fails at a partly covered huge PMD",
                )
                return False
            new_lo = lo - start_vpn + (walk.new_addr >> PAGE_SHIFT)
            if new_lo % HPAGE_PMD_NR == 0:
                if not _relocate_anon_pmd(k, walk, lo, head.folio):
                    walk.failed_at = lo
                    return False
                continue
            split_huge_pmd(k, mm, lo << PAGE_SHIFT)
        with k.lock(Lock.pte_table(pmd << 9 << PAGE_SHIFT)):
            done = not small and _relocate_run_ptes(k, walk, pmd, lo, hi)
            if not done and not _relocate_ptes(k, walk, pmd, lo, hi, small):
                return False
            if not small:
                k.step(
                    "mm/mremap.c:relocate_anon_ptes",
                    f"{what}: page table at {(pmd << 9) << PAGE_SHIFT:#x} done",
                )
    return True


def _relocate_anon_pmd(k: Kernel, walk: Walk, lo: int, ident: int) -> bool:
    """Models relocate_anon_pmd(): under pmd_trans_huge_lock(), the huge
    zero PMD is left alone; any other leaf's folio goes to
    relocate_large_folio(), whose folio_lock() sleeps under that spinlock."""
    what = "undo" if walk.undo else "walk"
    with k.lock(Lock.pmd(lo << PAGE_SHIFT)):
        if ident == ZERO_PAGE:
            k.step("mm/mremap.c:relocate_anon_pmd", f"{what}: huge zero PMD left alone")
            return True
        with k.lock(Lock.folio(ident)):
            ok = _relocate_large_folio(k, walk, k.folio(ident), lo)
            k.step(
                "mm/mremap.c:relocate_anon_pmd",
                f"{what}: PMD-mapped folio#{ident} " + ("relocated whole" if ok else "refused"),
            )
    return ok


def _relocate_run_ptes(k: Kernel, walk: Walk, pmd: int, lo: int, hi: int) -> bool:
    """relocate_anon_ptes() over one PMD extent whose entries are a PteRun
    of folios all in FolioRuns, done for the run at once: each such folio
    is small, mapped once, AnonExclusive and unpinned, so relocate_anon_pte()
    would lock it, pass every check and rewrite it; here the folio locks are
    taken in turn as recorded and the runs' mapping and index rewritten as
    one. False (nothing done) when the extent is not such a run, or an
    injected GUP-fast pin or the undo of relocated folios only needs each
    folio looked at: then relocate_anon_ptes() goes PTE by PTE."""
    mm = walk.old.mm
    leaf = k.pagetable(mm).leaf(pmd)
    race = k.gup_race
    if (
        not isinstance(leaf, PteRun)
        or (race is not None and race.when == RACE_BEFORE_WALK)
        or (walk.undo and k.policy.undo_relocated_only)
    ):
        return False
    base = pmd << 9
    first, end = max(lo, base + leaf.lo), min(hi, base + leaf.hi)
    if first >= end:
        return True
    runs = k.state.folios.runs_over(leaf.folio_of(first - base), leaf.folio_of(end - base))
    vma = k.vma(walk.old.id if walk.undo else walk.new.id)
    if runs is None or vma.anon_vma is None:
        return False
    shift = 0 if walk.undo else (walk.new_addr - walk.old_addr) >> PAGE_SHIFT
    vpn = first
    for run in runs:
        k.lock_in_turn(Lock.folios_in_turn(range(run.first, run.end)))
        index = linear_page_index(vma, (vpn + shift) << PAGE_SHIFT)
        k.remap_folio_run(run, vma.anon_vma, index)
        if not walk.undo:
            walk.relocated.extend(range(run.first, run.end))
        vpn += run.nr
    return True


def _relocate_ptes(k: Kernel, walk: Walk, pmd: int, lo: int, hi: int, small: bool) -> bool:
    """Models relocate_anon_ptes()/relocate_anon_pte() over one PMD extent:
    each present PTE's folio is locked, checked in the posted order, and
    relocated; the return value is the PTEs consumed (0: the walk fails)."""
    mm = walk.old.mm
    what = "undo" if walk.undo else "walk"
    policy = k.policy
    pinned_seen: set[int] = set()
    vpn = lo
    while vpn < hi:
        _race(k, walk, RACE_BEFORE_WALK, range(vpn, vpn + 1))
        pte = k.pt(mm).get(vpn)
        addr = vpn << PAGE_SHIFT
        if pte is None:
            vpn += 1
            continue
        if pte.kind != PRESENT:
            k.event(
                "relocate_anon_pte",
                f"{pte.kind} entry at {addr:#x} skipped as posted: its folio keeps its old index and mapping",
            )
            k.step("mm/mremap.c:relocate_anon_pte", f"{what}: {pte.kind} entry skipped")
            vpn += 1
            continue
        if pte.folio == ZERO_PAGE:
            vpn += 1
            continue
        folio = k.folio(pte.folio)
        with k.lock(Lock.folio(folio.id)):
            if folio.maybe_mapped_shared():
                k.event(
                    "relocate_anon_pte",
                    f"WARN_ON_ONCE: folio#{folio.id} mapped shared: skipped, counted a success",
                )
                k.step("mm/mremap.c:relocate_anon_pte", f"{what}: shared folio skipped")
                vpn += 1
                continue
            if not folio.anon_exclusive[0]:
                k.warn(
                    f"VM_WARN_ON_ONCE(!PageAnonExclusive(folio_page(folio, 0))) fires:"
                    f" folio#{folio.id}'s first page is not exclusive"
                )
            if (
                folio.maybe_dma_pinned()
                and policy.pin_check
                and not (walk.undo and policy.undo_relocated_only)
            ):
                if policy.pinned_aborts and not walk.undo:
                    k.event(
                        "relocate_anon_pte",
                        f"folio#{folio.id} is pinned: abort (as the changelog says)",
                    )
                    k.step("mm/mremap.c:relocate_anon_pte", f"{what}: pinned folio aborts")
                    walk.failed_at = vpn
                    return False
                if folio.id not in pinned_seen:
                    pinned_seen.add(folio.id)
                    k.event(
                        "relocate_anon_pte",
                        f"folio#{folio.id} is pinned: skipped, yet counted a success (as posted)"
                        + (": 1 per PTE, each of its PTEs in turn" if folio.order else ""),
                    )
                    k.step("mm/mremap.c:relocate_anon_pte", f"{what}: pinned folio skipped")
                vpn += 1
                continue
            if walk.undo and policy.undo_relocated_only and folio.id not in walk.relocated:
                vpn += 1
                continue
            if folio.order:
                done = _large_pte_folio(k, walk, pmd, folio, vpn, pte.page)
                if done is None:
                    walk.failed_at = vpn
                    return False
                vpn += done
                continue
            _rewrite(k, walk, folio, vpn)
            if small:
                k.step(
                    "mm/mremap.c:relocate_anon_pte",
                    f"{what}: folio#{folio.id} -> mapping anon_vma#{k.folio(folio.id).mapping}, index {k.folio(folio.id).index:#x}",
                )
        vpn += 1
    return True


def _large_pte_folio(
    k: Kernel, walk: Walk, pmd: int, folio: Folio, vpn: int, page: int
) -> int | None:
    """Models patch 03's PTE-mapped large folio case in relocate_anon_pte().

    is_thp_fully_spanned() aligns the CURRENT PTE's address down to the
    folio size: if that span lies in the range, __relocate_large_folio()
    takes the index from the current PTE's address and the walk consumes
    folio_nr_pages() PTEs from here, as posted, even when this PTE is not
    the head or the folio is not size-aligned (then the index is wrong and
    PTEs past the folio are skipped). Otherwise the folio is split, unless
    its anon_vma root is the one we hold. Returns PTEs consumed (0: retry
    the PTE), None when the walk fails.
    """
    size = folio.nr_pages
    start_vpn = walk.old_addr >> PAGE_SHIFT
    end_vpn = start_vpn + (walk.length >> PAGE_SHIFT)
    aligned = vpn & ~(size - 1)
    what = "undo" if walk.undo else "walk"
    if aligned >= start_vpn and aligned + size <= end_vpn:
        if vpn % size:
            k.warn(
                f"VM_WARN_ON_ONCE(old_addr & (size - 1)) fires: {vpn << PAGE_SHIFT:#x}"
                " is not aligned to the folio size"
            )
        if page:
            k.event(
                "relocate_anon_pte",
                f"folio#{folio.id} met at its page {page}, not its head: folio->index is set"
                " from this PTE's address, so the head's index is wrong",
            )
        _rewrite(k, walk, folio, vpn)
        k.step(
            "mm/mremap.c:relocate_anon_pte",
            f"{what}: large folio#{folio.id} relocated whole; {size} PTEs consumed from"
            f" {vpn << PAGE_SHIFT:#x}",
        )
        return size
    mapping = k.state.anon_vmas.get(folio.mapping) if folio.mapping is not None else None
    new_av = k.anon_vma(walk.new.anon_vma) if walk.new.anon_vma is not None else None
    if mapping is not None and new_av is not None and mapping.root == new_av.root:
        k.event(
            "relocate_anon_pte",
            f"large folio#{folio.id} straddles the range and shares our anon_vma root: split_folio() would deadlock: fail",
        )
        k.step("mm/mremap.c:relocate_anon_pte", "large folio cannot be split here: the walk fails")
        return None
    head_vpn = vpn - page
    with k.dropped(Lock.pte_table(pmd << 9 << PAGE_SHIFT)):
        k.event(
            "relocate_anon_pte",
            f"folio_get(folio#{folio.id}); pte_unmap_unlock(): the PTE lock is dropped;"
            " split_folio() with the folio lock and the new anon_vma's rwsem held",
        )
        _race(k, walk, RACE_DURING_SPLIT, range(head_vpn, head_vpn + size))
        err = split_folio(k, walk.old, k.folio(folio.id), head_vpn, caller_pins=1)
    k.event(
        "relocate_anon_pte",
        "pte_offset_map_lock() retakes the PTE lock (under the mmap write lock it cannot"
        " fail here; had it, !state->ptep returns 0 and relocate_anon_ptes() would"
        " pte_unmap_unlock() a PTE lock it does not hold)",
    )
    if err:
        k.event(
            "relocate_anon_pte",
            f"split_folio() failed (-{err}): `if (err || !state->ptep) return 0;`: the walk fails",
        )
        k.step(
            "mm/huge_memory.c:split_folio",
            f"{what}: large folio#{folio.id} cannot be split (-{err}): the walk fails",
        )
        return None
    k.step(
        "mm/huge_memory.c:split_folio",
        f"large folio#{folio.id} straddles the range: split (PTE lock dropped), retry the PTE",
    )
    return 0


def _relocate_large_folio(k: Kernel, walk: Walk, folio: Folio, head_vpn: int) -> bool:
    """Models relocate_large_folio(): refuse shared or pinned folios (the
    engine has no KSM folios), then __relocate_large_folio()."""
    if folio.maybe_mapped_shared() or (folio.maybe_dma_pinned() and k.policy.pin_check):
        k.event("relocate_large_folio", f"folio#{folio.id} is shared or pinned: fail")
        return False
    _rewrite(k, walk, folio, head_vpn)
    return True


def _rewrite(k: Kernel, walk: Walk, folio: Folio, vpn: int) -> None:
    """Models __relocate_large_folio() and relocate_anon_pte()'s rewrite:
    folio_move_anon_rmap() and WRITE_ONCE(folio->index, linear_page_index()
    of the address `vpn` maps, in the new VMA, or the old one on undo)."""
    old_addr = vpn << PAGE_SHIFT
    if walk.undo:
        vma, addr = walk.old, old_addr
    else:
        vma, addr = walk.new, old_addr - walk.old_addr + walk.new_addr
        walk.relocated.append(folio.id)
    vma = k.vma(vma.id)
    # folio_move_anon_rmap() then WRITE_ONCE(folio->index): stored as one.
    k.put_folio(folio._replace(mapping=vma.anon_vma, index=linear_page_index(vma, addr)))


def _split_instead_of_undo(k: Kernel, walk: Walk) -> tuple[VMA | None, VMA]:
    """Harry Yoo's alternative: keep what was relocated as the new VMA and
    move the rest as a plain copy of the old VMA, split at the failure.
    Returns (the relocated part, or None if nothing was, and the rest)."""
    assert walk.failed_at is not None
    done = (walk.failed_at << PAGE_SHIFT) - walk.old_addr
    new = k.vma(walk.new.id)
    old = k.vma(walk.old.id)
    if done:
        new = k.put_vma(replace(new, vm_end=new.vm_start + done))
        move_page_tables(k, old, new, walk.old_addr, walk.new_addr, done, True)
    else:
        new = k.put_vma(replace(new, vm_end=new.vm_start))
    rest_start = walk.new_addr + done
    pgoff = old.vm_pgoff + ((walk.old_addr + done - old.vm_start) >> PAGE_SHIFT)
    rest = replace(
        old,
        id=k.new_id(),
        vm_start=rest_start,
        vm_end=walk.new_addr + walk.length,
        vm_pgoff=pgoff,
        avc=(),
    )
    rest = k.put_vma(rest)
    rest = anon_vma_clone(k, rest, old)
    k.link_vma(rest)
    if not done:
        k.unlink_vma(new)
    k.step(
        "(policy: split)",
        f"split at {rest_start:#x}: relocated part kept, the rest copied plainly as vma#{rest.id}",
    )
    move_page_tables(
        k, old, k.vma(rest.id), walk.old_addr + done, rest_start, walk.length - done, True
    )
    return (k.vma(new.id) if done else None), k.vma(rest.id)
