"""mremap(2): shrink, grow, move, MREMAP_FIXED, MREMAP_DONTUNMAP, the 6.17
multi-VMA move, and the proposed MREMAP_RELOCATE_ANON series (v1, 9 June
2025, never merged).

Models mm/mremap.c. A move copies the VMA (copy_vma: merge, or a new VMA
keeping the old pgoff and anon_vma), moves the page tables and unmaps the
source; folios keep their index and mapping, so a moved faulted VMA rarely
merges. The series instead relocates every folio to a new anon_vma with a
linear index (relocate_anon_folios), so the moved VMA can merge.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.gup import populate_range
from engine.mm_constants import MAX_MAP_COUNT, PAGE_SHIFT, PAGE_SIZE, TASK_SIZE, page_align
from engine.mm_types import (
    VM_ACCOUNT,
    VM_DONTEXPAND,
    VM_LOCKED,
    VM_LOCKED_MASK,
    VM_MAYSHARE,
    VM_PFNMAP,
    VM_SHARED,
    VMA,
)
from engine.mmap import complete_munmap_vmas, do_vmi_munmap, get_unmapped_area
from engine.move_page_tables import move_page_tables
from engine.relocate import Walk, relocate_and_move, should_relocate_anon
from engine.rmap import anon_vma_prepare, unlink_anon_vmas
from engine.sim.errors import SyscallError
from engine.sim.kernel import Kernel
from engine.sim.trace import Lock
from engine.uapi import MAP, MREMAP
from engine.vma import (
    copy_vma,
    find_mergeable_anon_vma,
    vma_lookup,
    vma_merge_extend,
    vmas_in_range,
)

MAYMOVE = MREMAP["MREMAP_MAYMOVE"]
FIXED = MREMAP["MREMAP_FIXED"]
DONTUNMAP = MREMAP["MREMAP_DONTUNMAP"]
RELOCATE_FLAGS = MREMAP["MREMAP_RELOCATE_ANON"] | MREMAP["MREMAP_MUST_RELOCATE_ANON"]
MUST_RELOCATE_ANON = MREMAP["MREMAP_MUST_RELOCATE_ANON"]


@dataclass
class VRM:
    """Models struct vma_remap_struct: one mremap request as it proceeds."""

    mm: str
    addr: int
    old_len: int
    new_len: int
    flags: int
    new_addr: int
    vma: VMA | None = None

    @property
    def delta(self) -> int:
        return abs(self.new_len - self.old_len)

    @property
    def implies_new_addr(self) -> bool:
        """vrm_implies_new_addr(): FIXED or DONTUNMAP name the destination."""
        return bool(self.flags & (FIXED | DONTUNMAP))

    @property
    def relocate(self) -> bool:
        return bool(self.flags & RELOCATE_FLAGS)


def do_mremap(
    k: Kernel, mm: str, addr: int, old_len: int, new_len: int, flags: int, new_addr: int = 0
) -> int:
    """Models mm/mremap.c:do_mremap(): validate, then move, resize or both."""
    vrm = VRM(mm, addr, page_align(old_len), page_align(new_len), flags, new_addr)
    check_mremap_params(k, vrm)
    k.step("mm/mremap.c:check_mremap_params", "flags, alignment and lengths are valid")
    move_only = flags & FIXED and vrm.old_len == vrm.new_len
    if move_only and not vrm.relocate:
        return remap_move(k, vrm)
    if move_only:
        k.event(
            "do_mremap",
            "RELOCATE_ANON predates the 6.17 multi-VMA move: the series' single-VMA path is used",
        )
    vrm.vma = vma_lookup(k.state, mm, addr)
    check_prep_vma(k, vrm)
    result = mremap_to(k, vrm) if vrm.implies_new_addr else mremap_at(k, vrm)
    return result


def check_mremap_params(k: Kernel, vrm: VRM) -> None:
    """Models mm/mremap.c:check_mremap_params(), with the series' two flags.

    Under the cow_context rmap model the kernel is the COW-context branch,
    whose check_mremap_params() (mm/mremap.c@d91a1a12) knows only FIXED,
    MAYMOVE and DONTUNMAP: the RELOCATE_ANON series was dropped in July
    2025 and the proposal replaces it (a move records an offset; no folio
    is rewritten), so the series' flags are -EINVAL there, as on mainline.
    """
    flags = vrm.flags
    if k.state.rmap_model == "cow_context" and flags & RELOCATE_FLAGS:
        raise SyscallError(
            "EINVAL",
            f"unknown flags {flags & RELOCATE_FLAGS:#x}: the COW-context branch has no"
            " MREMAP_RELOCATE_ANON (the proposal replaces the series)",
        )
    if flags & ~(FIXED | MAYMOVE | DONTUNMAP | RELOCATE_FLAGS):
        raise SyscallError("EINVAL", f"unknown flags {flags:#x}")
    if flags & RELOCATE_FLAGS and not flags & MAYMOVE:
        raise SyscallError("EINVAL", "MREMAP_RELOCATE_ANON needs MREMAP_MAYMOVE (the series' rule)")
    if vrm.addr % PAGE_SIZE:
        raise SyscallError("EINVAL", "old address not page aligned")
    if not vrm.new_len:
        raise SyscallError("EINVAL", "new_len is 0")
    if vrm.new_len > TASK_SIZE:
        raise SyscallError("EINVAL", "new_len > TASK_SIZE")
    if not vrm.implies_new_addr:
        return
    if vrm.new_addr > TASK_SIZE - vrm.new_len:
        raise SyscallError("EINVAL", "new_addr + new_len beyond TASK_SIZE")
    if vrm.new_addr % PAGE_SIZE:
        raise SyscallError("EINVAL", "new_addr not page aligned")
    if not flags & MAYMOVE:
        raise SyscallError("EINVAL", "MREMAP_FIXED/DONTUNMAP need MREMAP_MAYMOVE")
    if flags & DONTUNMAP and vrm.old_len != vrm.new_len:
        raise SyscallError("EINVAL", "MREMAP_DONTUNMAP cannot resize")
    if vrm.addr + vrm.old_len > vrm.new_addr and vrm.new_addr + vrm.new_len > vrm.addr:
        raise SyscallError("EINVAL", "source and destination overlap")
    if len(k.mm(vrm.mm).vmas) + 2 >= MAX_MAP_COUNT - 3:
        raise SyscallError("ENOMEM", "map_count too close to max_map_count")


def check_prep_vma(k: Kernel, vrm: VRM) -> None:
    """Models mm/mremap.c:check_prep_vma(): the source VMA allows it."""
    vma = vrm.vma
    if vma is None:
        raise SyscallError("EFAULT", f"no VMA at {vrm.addr:#x}")
    if not vrm.implies_new_addr:
        vrm.new_addr = vrm.addr
    expand = vrm.new_len > vrm.old_len
    if not expand and not vrm.implies_new_addr:
        return
    old_len = vrm.old_len
    if not old_len and not vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        raise SyscallError("EINVAL", "old_len 0 duplicates only shared mappings")
    if vrm.flags & DONTUNMAP and vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise SyscallError("EINVAL", "MREMAP_DONTUNMAP on VM_DONTEXPAND/VM_PFNMAP")
    if vrm.new_len < vrm.old_len:
        old_len = vrm.new_len
    if old_len > vma.vm_end - vrm.addr:
        raise SyscallError(
            "EFAULT",
            f"range {vrm.addr:#x}+{old_len:#x} runs past the end of vma#{vma.id} ({vma.vm_end:#x})",
        )
    if vrm.new_len == vrm.old_len:
        return
    if vma.vm_flags & (VM_DONTEXPAND | VM_PFNMAP):
        raise SyscallError("EFAULT", "VM_DONTEXPAND/VM_PFNMAP cannot grow")


def mremap_at(k: Kernel, vrm: VRM) -> int:
    """Models mm/mremap.c:mremap_at(): resize where it is, or move to grow."""
    if vrm.new_len == vrm.old_len:
        return vrm.addr
    if vrm.new_len < vrm.old_len:
        do_vmi_munmap(k, vrm.mm, vrm.addr + vrm.new_len, vrm.delta, "shrink_vma", "mm/mremap.c")
        return vrm.addr
    return expand_vma(k, vrm)


def expand_vma(k: Kernel, vrm: VRM) -> int:
    """Models mm/mremap.c:expand_vma(): grow in place if the range ends at
    the VMA's end and nothing follows; else move (if MREMAP_MAYMOVE)."""
    vma = vrm.vma
    assert vma is not None
    if vma.vm_end - vrm.addr == vrm.old_len and vma_expandable(k, vma, vrm.delta):
        grown = vma_merge_extend(k, vma, vrm.delta)
        if grown is None:
            raise SyscallError("ENOMEM", "vma_merge_extend failed")
        k.step("mm/vma.c:vma_merge_extend", f"vma#{grown.id} grown in place to {grown.vm_end:#x}")
        if grown.vm_flags & VM_LOCKED:
            populate_range(k, vrm.mm, vrm.addr + vrm.old_len, vrm.addr + vrm.new_len)
        return vrm.addr
    why = (
        "the range does not end at the VMA's end"
        if vma.vm_end - vrm.addr != vrm.old_len
        else "the pages after it are mapped"
    )
    if not vrm.flags & MAYMOVE:
        raise SyscallError("ENOMEM", f"cannot grow in place ({why}) and MREMAP_MAYMOVE not given")
    k.event("expand_vma", f"cannot grow in place: {why}; moving")
    vrm_set_new_addr(k, vrm)
    return move_vma(k, vrm)


def vma_expandable(k: Kernel, vma: VMA, delta: int) -> bool:
    """Models mm/mremap.c:vma_expandable(): nothing mapped in the way."""
    end = vma.vm_end + delta
    return not vmas_in_range(k.state, vma.mm, vma.vm_end, end) and end <= TASK_SIZE


def vrm_set_new_addr(k: Kernel, vrm: VRM) -> None:
    """Models mm/mremap.c:vrm_set_new_addr(): where the moved range goes."""
    vma = vrm.vma
    assert vma is not None
    pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> PAGE_SHIFT)
    flags = MAP["MAP_FIXED"] if vrm.flags & FIXED else 0
    hint = vrm.new_addr if vrm.implies_new_addr else 0
    shared = bool(vma.vm_flags & VM_MAYSHARE)
    vrm.new_addr = get_unmapped_area(k, vrm.mm, hint, vrm.new_len, pgoff, flags, shared)


def mremap_to(k: Kernel, vrm: VRM) -> int:
    """Models mm/mremap.c:mremap_to(): a move to a named address."""
    if vrm.flags & FIXED:
        do_vmi_munmap(k, vrm.mm, vrm.new_addr, vrm.new_len, "do_munmap", "mm/mmap.c")
        vrm.vma = vma_lookup(k.state, vrm.mm, vrm.addr)
        if vrm.vma is None:
            raise SyscallError("EFAULT", "the source went away with the destination")
    if vrm.new_len < vrm.old_len:
        do_vmi_munmap(k, vrm.mm, vrm.addr + vrm.new_len, vrm.delta, "shrink_vma", "mm/mremap.c")
        vrm.old_len = vrm.new_len
        vrm.vma = vma_lookup(k.state, vrm.mm, vrm.addr)
    vrm_set_new_addr(k, vrm)
    return move_vma(k, vrm)


def remap_move(k: Kernel, vrm: VRM) -> int:
    """Models mm/mremap.c:remap_move() (6.17): move every VMA in the range,
    keeping the gaps between them. A gap at the start is -EFAULT; a failure
    part-way leaves the earlier VMAs moved."""
    start, end = vrm.addr, vrm.addr + vrm.old_len
    target = vrm.new_addr
    res: int | None = None
    last_end = 0
    pos = start
    while pos < end:
        vmas = vmas_in_range(k.state, vrm.mm, pos, end)
        if not vmas:
            break
        vma = vmas[0]
        if res is None and start < vma.vm_start:
            raise SyscallError("EFAULT", f"gap at the start of the range ({start:#x})")
        addr = max(vma.vm_start, start)
        length = min(end, vma.vm_end) - addr
        offset = vma.vm_start - last_end if res is not None else 0
        last_end = vma.vm_end
        sub = VRM(vrm.mm, addr, length, length, vrm.flags, target + offset, vma)
        if res is not None:
            k.event("remap_move", f"next vma#{vma.id}: moved to {sub.new_addr:#x} (gap kept)")
        check_prep_vma(k, sub)
        moved = mremap_to(k, sub)
        if res is None:
            res = moved
        target = moved + length
        pos = last_end
    if res is None:
        raise SyscallError("EFAULT", "no VMA in the range")
    return res


# --- move_vma and its steps -------------------------------------------------


def move_vma(k: Kernel, vrm: VRM) -> int:
    """Models mm/mremap.c:move_vma(): copy the VMA, move the page tables,
    then unmap the source (or, with MREMAP_DONTUNMAP, keep it empty)."""
    vma = vrm.vma
    assert vma is not None
    if len(k.mm(vrm.mm).vmas) >= MAX_MAP_COUNT - 3:
        raise SyscallError("ENOMEM", "map_count too close to max_map_count")
    with k.lock(Lock.vma_write(vma.id)):
        err, new_vma = copy_vma_and_data(k, vrm)
        if new_vma is UNSET:
            stale = k.policy.uninitialised_new_vma == "stale"
            k.event(
                "move_vma",
                "`if (err && !new_vma)` reads new_vma, never set: "
                + (
                    "a stale non-NULL pointer, so move_vma() goes on as if a copy existed"
                    if stale
                    else "NULL on a zeroed stack, so -EFAULT is returned"
                ),
            )
            k.warn("posted code reads an uninitialised variable here (new_vma in move_vma())")
            k.step("mm/mremap.c:move_vma", "reads the new_vma copy_vma_and_data() never set")
            if not stale:
                raise SyscallError("EFAULT", "MREMAP_MUST_RELOCATE_ANON refused the move")
            k.event(
                "move_vma",
                "vrm_stat_account(new_len) counts a mapping that does not exist; the"
                " source range is unmapped: its data is gone, and -EFAULT returned",
            )
            unmap_source_vma(k, vrm)
            raise SyscallError("EFAULT", "the stale new_vma path unmapped the source")
        if err and new_vma is None:
            raise SyscallError(err, "copy_vma_and_data failed")
        if not err and vrm.flags & DONTUNMAP:
            assert isinstance(new_vma, VMA)
            dontunmap_complete(k, vrm, new_vma)
        else:
            unmap_source_vma(k, vrm)
    if err:
        raise SyscallError(err, "moving the page tables failed")
    return vrm.new_addr


class Unset:
    """What copy_vma_and_data() leaves in *new_vma_ptr when it returns
    without setting it (patch 02's early return)."""


UNSET = Unset()


def copy_vma_and_data(k: Kernel, vrm: VRM) -> tuple[str | None, VMA | None | Unset]:
    """Models mm/mremap.c:copy_vma_and_data(), with the series' relocation.

    Returns (errno or None, the new VMA, or UNSET where the posted code
    returns without writing *new_vma_ptr).
    """
    vma = vrm.vma
    assert vma is not None
    relocate = False
    if vrm.relocate:
        relocate, err = should_relocate_anon(k, vma, bool(vrm.flags & MUST_RELOCATE_ANON))
        if err:
            k.event(
                "copy_vma_and_data",
                "`if (err) return err;`: returns before setting *new_vma_ptr, and"
                " without vrm_uncharge(): move_vma()'s vrm_charge() is not undone",
            )
            k.step("mm/mremap.c:should_relocate_anon", "MREMAP_MUST_RELOCATE_ANON: -EFAULT")
            return "EFAULT", UNSET
    while True:
        new_pgoff = vma.vm_pgoff + ((vrm.addr - vma.vm_start) >> PAGE_SHIFT)
        new_vma, vma, need_rmap_locks, relocate = copy_vma(
            k, vma, vrm.new_addr, vrm.new_len, new_pgoff, relocate
        )
        vrm.vma = vma
        k.step(
            "mm/vma.c:copy_vma",
            f"destination is vma#{new_vma.id} {new_vma.vm_start:#x}-{new_vma.vm_end:#x}",
        )
        if not relocate:
            break
        new_vma = anon_vma_prepare(k, new_vma, find_mergeable_anon_vma(k, new_vma))
        k.step("mm/rmap.c:__anon_vma_prepare", f"vma#{new_vma.id} gets anon_vma#{new_vma.anon_vma}")
        walk = Walk(vma, new_vma, vrm.addr, vrm.new_addr, vrm.old_len)
        outcome = relocate_and_move(k, walk)
        if outcome.moved:
            if vma.id not in k.state.vmas:
                # The relocated VMA merged with its neighbour, the source VMA
                # itself (moved next to where it was): follow it, as copy_vma()
                # updates *vmap when a plain move merges into the source.
                vrm.vma = outcome.new_vma
                k.event(
                    "copy_vma_and_data",
                    f"the source vma#{vma.id} was merged into vma#{outcome.new_vma.id};"
                    " the model follows it as copy_vma() does for *vmap (the posted"
                    " patch does not say how it handles this case)",
                )
            return None, outcome.new_vma
        k.step(
            "mm/mremap.c:copy_vma_and_data", "relocation failed and was undone: unmap the new VMA"
        )
        k.event(
            "copy_vma_and_data",
            f"vrm_stat_account(vrm, new_len): total_vm += {vrm.new_len >> PAGE_SHIFT} pages,"
            " to balance the do_munmap() of the new VMA",
        )
        complete_munmap_vmas(k, vrm.mm, [new_vma], new_vma.vm_start, new_vma.vm_end)
        k.step("mm/mmap.c:do_munmap", f"vma#{new_vma.id} unmapped")
        relocate = False
        if vrm.flags & MUST_RELOCATE_ANON:
            k.event("copy_vma_and_data", "MUST: vrm_uncharge(); *new_vma_ptr = NULL; -EFAULT")
            return "EFAULT", None
        vma = k.vma(vma.id)
        k.event("copy_vma_and_data", "MREMAP_RELOCATE_ANON falls back to a plain move")
    move_page_tables(
        k,
        vma,
        new_vma,
        vrm.addr,
        vrm.new_addr,
        vrm.old_len,
        need_rmap_locks,
        posted_series=vrm.relocate,
    )
    return None, k.vma(new_vma.id)


def unmap_source_vma(k: Kernel, vrm: VRM) -> None:
    """Models mm/mremap.c:unmap_source_vma(): unmap the old range without
    un-accounting it (VM_ACCOUNT cleared around the munmap, then restored
    on the pieces that remain)."""
    vma = vrm.vma
    assert vma is not None
    vma = k.vma(vma.id)
    start, end = vrm.addr, vrm.addr + vrm.old_len
    accountable = bool(vma.vm_flags & VM_ACCOUNT) and not vrm.flags & DONTUNMAP
    vm_start, vm_end = vma.vm_start, vma.vm_end
    if accountable:
        k.put_vma(replace(vma, vm_flags=vma.vm_flags & ~VM_ACCOUNT))
    do_vmi_munmap(k, vrm.mm, start, vrm.old_len, "unmap_source_vma", "mm/mremap.c")
    if accountable:
        for piece_addr, cond in ((start - 1, vm_start < start), (end, vm_end > end)):
            piece = vma_lookup(k.state, vrm.mm, piece_addr) if cond else None
            if piece is not None:
                k.put_vma(replace(piece, vm_flags=piece.vm_flags | VM_ACCOUNT))


def dontunmap_complete(k: Kernel, vrm: VRM, new_vma: VMA) -> None:
    """Models mm/mremap.c:dontunmap_complete(): the source stays mapped,
    empty; it loses VM_LOCKED and, if all of it moved, its anon_vma chains
    (under cow_context only VM_LOCKED: mm/mremap.c@d91a1a12).
    (It keeps VM_ACCOUNT: 6.16 cleared it, a regression reverted for 6.18
    by "mm/mremap: correctly account old mapping after MREMAP_DONTUNMAP
    remap"; the host kernel behaves so.)"""
    vma = vrm.vma
    assert vma is not None
    vma = k.vma(vma.id)
    vma = k.put_vma(replace(vma, vm_flags=vma.vm_flags & ~VM_LOCKED_MASK))
    whole = vrm.addr == vma.vm_start and vrm.addr + vrm.old_len == vma.vm_end
    if k.state.rmap_model == "cow_context":
        k.event(
            "dontunmap_complete",
            f"CONFIG_COW_CONTEXT_ANON_RMAP: vma#{vma.id} keeps its DUMMY_ANON_VMA",
        )
    elif new_vma.id != vma.id and whole:
        unlink_anon_vmas(k, vma)
    k.step("mm/mremap.c:dontunmap_complete", f"vma#{vma.id} stays mapped, empty")
