"""VMA lookup, splitting, merging, copying, unmapping and stack growth.

Models mm/vma.c as of Linux 6.18.8 and later (and the lookups of mm/mmap.c
and include/linux/mm.h every caller uses): the merge rules of
vma_merge_new_range() (mmap, mremap's copy_vma, in-place growth) and
vma_merge_existing_range() (mprotect, madvise), with the 6.16 anon_vma rule
(879bca0a2c4f) and the 6.18.8 fix for faulted-into-unfaulted merges
(61f67c230a5e: copied_from). Each rule returns a Verdict saying which check
decided and with which values, so the trace can answer "why not merged?"
with the very code that decided.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import NamedTuple

from engine import cow_context
from engine.huge_memory import split_huge_pmd_address
from engine.mm_constants import MAX_MAP_COUNT, PAGE_SHIFT, PAGE_SIZE, STACK_GUARD_GAP
from engine.mm_types import (
    VM_ACCESS_FLAGS,
    VM_GROWSDOWN,
    VM_SPECIAL,
    VMA,
    RmapModel,
    State,
    flag_names,
)
from engine.rmap import anon_vma_clone, anon_vma_prepare, unlink_anon_vmas
from engine.sim.errors import SyscallError
from engine.sim.kernel import Kernel
from engine.sim.trace import Lock, ObjRef, Rule

# VM_SOFTDIRTY (and 6.18.y's VM_STICKY) are not modelled: no bit to ignore.
VM_IGNORE_MERGE = 0


class Verdict(NamedTuple):
    """A merge rule's answer, the sentence saying why, the rule that decided
    (the kernel function and its check) and the values it compared."""

    ok: bool
    why: str
    rule: Rule | None = None
    values: tuple[tuple[str, str], ...] = ()


# --- lookups (the maple tree walks of mm/mmap.c and mm/vma.h) -------------


def find_vma(state: State, mm: str, addr: int) -> VMA | None:
    """Models mm/mmap.c:find_vma(): the first VMA ending above addr."""
    for v in state.processes[mm].vmas:
        vma = state.vmas[v]
        if vma.vm_end > addr:
            return vma
    return None


def vma_lookup(state: State, mm: str, addr: int) -> VMA | None:
    """Models include/linux/mm.h:vma_lookup(): the VMA containing addr."""
    vma = find_vma(state, mm, addr)
    return vma if vma is not None and vma.vm_start <= addr else None


def vma_before(state: State, mm: str, addr: int) -> VMA | None:
    """The last VMA starting below addr (find_vma_prev()'s prev)."""
    found = None
    for v in state.processes[mm].vmas:
        vma = state.vmas[v]
        if vma.vm_start >= addr:
            break
        found = vma
    return found


def find_vma_prev(state: State, vma: VMA) -> VMA | None:
    """Models vma_prev(): the VMA before this one in its mm."""
    ids = state.processes[vma.mm].vmas
    i = ids.index(vma.id)
    return state.vmas[ids[i - 1]] if i > 0 else None


def find_vma_next(state: State, vma: VMA) -> VMA | None:
    """Models vma_next(): the VMA after this one in its mm."""
    ids = state.processes[vma.mm].vmas
    i = ids.index(vma.id)
    return state.vmas[ids[i + 1]] if i + 1 < len(ids) else None


def vmas_in_range(state: State, mm: str, start: int, end: int) -> list[VMA]:
    """Models for_each_vma_range(): VMAs intersecting [start, end)."""
    found = []
    for v in state.processes[mm].vmas:
        vma = state.vmas[v]
        if vma.vm_start >= end:
            break
        if vma.vm_end > start:
            found.append(vma)
    return found


def vm_start_gap(vma: VMA) -> int:
    """Models include/linux/mm.h:vm_start_gap(): a stack's guard gap belongs to it."""
    if vma.vm_flags & VM_GROWSDOWN:
        return max(vma.vm_start - STACK_GUARD_GAP, 0)
    return vma.vm_start


def unmapped_area_topdown(k: Kernel, mm: str, length: int, high: int) -> int:
    """Models mm/vma.c:unmapped_area_topdown(): the highest gap that fits.

    The gap ends at the next VMA's vm_start_gap() (or the top of the area)
    and starts at the previous VMA's end (or the first page).
    """
    vmas = k.state.mm_vmas(mm)
    gap_end = high
    for vma in reversed(vmas):
        if vma.vm_start >= high:
            continue
        start = max(vma.vm_end, PAGE_SIZE)
        top = min(gap_end, high)
        if top >= start and top - start >= length:
            return top - length
        gap_end = vm_start_gap(vma)
    if gap_end - PAGE_SIZE >= length:
        return gap_end - length
    raise SyscallError("ENOMEM", "get_unmapped_area: no gap large enough")


# --- the merge rules --------------------------------------------------------


@dataclass
class VMG:
    """Models struct vma_merge_struct: a proposed range and its neighbours.

    `middle` is the VMA being changed (existing-range merges) or None (new
    ranges); `copied_from` is the VMA copy_vma() copies (6.18.8's fix).
    """

    mm: str
    start: int
    end: int
    pgoff: int
    flags: int
    anon_vma: int | None
    shmem: int | None
    prev: VMA | None = None
    middle: VMA | None = None
    next: VMA | None = None
    copied_from: VMA | None = None
    just_expand: bool = False
    target: VMA | None = None
    rmap_model: RmapModel = "anon_vma"

    @classmethod
    def of(cls, vma: VMA, start: int, end: int, **kw: object) -> VMG:
        """Models VMG_VMA_STATE(): the proposal takes vma's attributes."""
        pgoff = vma.vm_pgoff + ((start - vma.vm_start) >> PAGE_SHIFT)
        fields: dict[str, object] = dict(
            mm=vma.mm,
            start=start,
            end=end,
            pgoff=pgoff,
            flags=vma.vm_flags,
            anon_vma=vma.anon_vma,
            shmem=vma.shmem,
            middle=vma,
        )
        fields.update(kw)
        return cls(**fields)  # type: ignore[arg-type]


def vma_is_fork_child(vma: VMA | None) -> bool:
    """Models mm/vma.c:vma_is_fork_child() (vma_had_uncowed_parents() before
    the 6.18.8 fix): faulted and chained to more than one anon_vma."""
    return vma is not None and vma.anon_vma is not None and len(vma.avc) != 1


def _av(av: int | None) -> str:
    return "NULL" if av is None else f"anon_vma#{av}"


def is_mergeable_vma(vmg: VMG, tgt: VMA) -> Verdict:
    """Models mm/vma.c:is_mergeable_vma(): same flags, file, policy, name."""
    differ = (tgt.vm_flags ^ vmg.flags) & ~VM_IGNORE_MERGE
    if differ:
        names = ",".join(flag_names(differ))
        return Verdict(
            False,
            f"vm_flags differ: {names}",
            Rule("is_mergeable_vma", "vm_flags"),
            (
                ("differ", names),
                ("flags", f"{vmg.flags:#x}"),
                ("target_flags", f"{tgt.vm_flags:#x}"),
            ),
        )
    if tgt.shmem != vmg.shmem:
        return Verdict(
            False,
            "different files (each MAP_SHARED mapping has its own shmem file)",
            Rule("is_mergeable_vma", "vm_file"),
            (("file", str(vmg.shmem)), ("target_file", str(tgt.shmem))),
        )
    return Verdict(True, "same vm_flags and file", Rule("is_mergeable_vma"))


def is_mergeable_anon_vma(vmg: VMG, tgt: VMA) -> Verdict:
    """Models mm/vma.c:is_mergeable_anon_vma() (6.16 rule, 6.18.8 fix).

    Case 1: the target is unfaulted and the source faulted: the target will
    take the source's anon_vma, refused if the source (or, for mremap, the
    VMA it was copied from) is a fork child. Case 2: the target faulted and
    the source not: refused if the target is a fork child. Case 3: both
    must already share one anon_vma (or both be NULL). Under cow_context
    (the branch's CONFIG_COW_CONTEXT_ANON_RMAP) it is always true.
    """
    if vmg.rmap_model == "cow_context":
        return Verdict(
            True,
            "CONFIG_COW_CONTEXT_ANON_RMAP: is_mergeable_anon_vma() is always true",
            Rule("is_mergeable_anon_vma", "cow_context"),
        )
    tgt_anon, src_anon, src = tgt.anon_vma, vmg.anon_vma, vmg.middle
    if tgt_anon is None and src_anon is not None:
        if vma_is_fork_child(src):
            assert src is not None
            return Verdict(
                False,
                f"case 1: source vma#{src.id} is a fork child ({len(src.avc)} anon_vma_chains)",
                Rule("is_mergeable_anon_vma", "case 1, vma_is_fork_child(src)"),
                (("source", f"vma#{src.id}"), ("anon_vma_chains", str(len(src.avc)))),
            )
        if vma_is_fork_child(vmg.copied_from):
            assert vmg.copied_from is not None
            return Verdict(
                False,
                f"case 1: copied-from vma#{vmg.copied_from.id} is a fork child"
                f" ({len(vmg.copied_from.avc)} anon_vma_chains; the 6.18.8 fix)",
                Rule("is_mergeable_anon_vma", "case 1, vma_is_fork_child(copied_from)"),
                (
                    ("copied_from", f"vma#{vmg.copied_from.id}"),
                    ("anon_vma_chains", str(len(vmg.copied_from.avc))),
                ),
            )
        return Verdict(
            True,
            f"case 1: target unfaulted takes {_av(src_anon)}",
            Rule("is_mergeable_anon_vma", "case 1"),
            (("anon_vma", _av(src_anon)), ("target_anon_vma", "NULL")),
        )
    if tgt_anon is not None and src_anon is None:
        if vma_is_fork_child(tgt):
            return Verdict(
                False,
                f"case 2: target is a fork child ({len(tgt.avc)} anon_vma_chains)",
                Rule("is_mergeable_anon_vma", "case 2, vma_is_fork_child(tgt)"),
                (("target", f"vma#{tgt.id}"), ("anon_vma_chains", str(len(tgt.avc)))),
            )
        return Verdict(
            True,
            f"case 2: unfaulted range joins {_av(tgt_anon)}",
            Rule("is_mergeable_anon_vma", "case 2"),
            (("anon_vma", "NULL"), ("target_anon_vma", _av(tgt_anon))),
        )
    values = (("anon_vma", _av(src_anon)), ("target_anon_vma", _av(tgt_anon)))
    if src_anon == tgt_anon:
        return Verdict(
            True,
            f"case 3: same anon_vma ({_av(src_anon)})",
            Rule("is_mergeable_anon_vma", "case 3"),
            values,
        )
    return Verdict(
        False,
        f"case 3: anon_vma differs: {_av(src_anon)} != {_av(tgt_anon)}",
        Rule("is_mergeable_anon_vma", "case 3"),
        values,
    )


def _contiguous(vmg: VMG, tgt: VMA, rule: str, expected: int, found: int, sums: str) -> Verdict:
    """The checks both sides share: attributes, anon_vma, then vm_pgoff.

    `sums` shows how `expected` was computed ("0x7f0 + 5"), for the sentence.
    """
    v = is_mergeable_vma(vmg, tgt)
    if not v.ok:
        return v
    a = is_mergeable_anon_vma(vmg, tgt)
    if not a.ok:
        return a
    values = a.values + (("expected_pgoff", f"{expected:#x}"), ("found_pgoff", f"{found:#x}"))
    if found != expected:
        why = f"pgoff {found:#x} != {sums}" + _pgoff_hint(vmg)
        return Verdict(False, why, Rule(rule, "vm_pgoff"), values)
    return Verdict(True, f"{a.why}; pgoff {found:#x} == {sums}", Rule(rule), values)


def can_vma_merge_before(vmg: VMG, nxt: VMA) -> Verdict:
    """Models mm/vma.c:can_vma_merge_before(): may the range join next?

    next must start where the range's pages end: next.vm_pgoff ==
    vmg.pgoff + pages of the range.
    """
    pglen = (vmg.end - vmg.start) >> PAGE_SHIFT
    sums = f"{vmg.pgoff:#x} + {pglen}"
    return _contiguous(vmg, nxt, "can_vma_merge_before", vmg.pgoff + pglen, nxt.vm_pgoff, sums)


def can_vma_merge_after(vmg: VMG, prev: VMA) -> Verdict:
    """Models mm/vma.c:can_vma_merge_after(): may the range join prev?

    The range must continue prev's pages: vmg.pgoff == prev.vm_pgoff +
    pages of prev.
    """
    expected = prev.vm_pgoff + prev.pages
    sums = f"{prev.vm_pgoff:#x} + {prev.pages}"
    return _contiguous(vmg, prev, "can_vma_merge_after", expected, vmg.pgoff, sums)


def _pgoff_hint(vmg: VMG) -> str:
    if vmg.anon_vma is not None and vmg.pgoff != vmg.start >> PAGE_SHIFT:
        return " (a faulted VMA keeps the pgoff of where it was faulted)"
    return ""


def can_vma_merge_left(k: Kernel, vmg: VMG, fn: str) -> bool:
    """Models mm/vma.c:can_vma_merge_left(): adjacent prev that accepts us."""
    prev = vmg.prev
    if prev is None or prev.vm_end != vmg.start:
        k.event(fn, "prev: none adjacent")
        return False
    v = can_vma_merge_after(vmg, prev)
    verdict = "can merge" if v.ok else "refused"
    k.event(
        fn,
        f"prev vma#{prev.id} {verdict}: {v.why}",
        rule=v.rule,
        candidate=ObjRef("vma", prev.id),
        **dict(v.values),
    )
    return v.ok


def can_vma_merge_right(k: Kernel, vmg: VMG, can_left: bool, fn: str) -> bool:
    """Models mm/vma.c:can_vma_merge_right(), with the three-way check.

    prev and next may each accept the range and still not accept each
    other: two different non-NULL anon_vmas cannot become one VMA.
    """
    nxt = vmg.next
    if nxt is None or vmg.end != nxt.vm_start:
        k.event(fn, "next: none adjacent")
        return False
    v = can_vma_merge_before(vmg, nxt)
    values = dict(v.values)
    candidate = ObjRef("vma", nxt.id)
    if not v.ok:
        k.event(
            fn, f"next vma#{nxt.id} refused: {v.why}", rule=v.rule, candidate=candidate, **values
        )
        return False
    if not can_left:
        k.event(
            fn, f"next vma#{nxt.id} can merge: {v.why}", rule=v.rule, candidate=candidate, **values
        )
        return True
    prev = vmg.prev
    assert prev is not None
    if vmg.rmap_model == "cow_context":
        k.event(
            fn,
            f"next vma#{nxt.id} can merge: {v.why} (CONFIG_COW_CONTEXT_ANON_RMAP:"
            " no three-way anon_vma check)",
            rule=v.rule,
            candidate=candidate,
            **values,
        )
        return True
    if prev.anon_vma is None or nxt.anon_vma is None or prev.anon_vma == nxt.anon_vma:
        k.event(
            fn,
            f"next vma#{nxt.id} can merge: {v.why}; prev and next compatible",
            rule=v.rule,
            candidate=candidate,
            **values,
        )
        return True
    k.event(
        fn,
        f"next vma#{nxt.id} refused: three-way merge needs prev and next to share"
        f" an anon_vma: {_av(prev.anon_vma)} != {_av(nxt.anon_vma)}",
        rule=Rule("can_vma_merge_right", "three-way, prev and next anon_vmas"),
        prev_anon_vma=_av(prev.anon_vma),
        next_anon_vma=_av(nxt.anon_vma),
    )
    return False


def explain_adjacent(state: State, a: VMA, b: VMA) -> Verdict:
    """Why two adjacent VMAs are (not) one: the rule mprotect would apply.

    Runs can_vma_merge_after() as if b were modified in place with its own
    attributes next to a: the same rule code, never a second copy.
    """
    if a.vm_end != b.vm_start:
        return Verdict(False, f"not adjacent: {a.vm_end:#x} != {b.vm_start:#x}")
    if b.vm_flags & VM_SPECIAL:
        return Verdict(False, "VM_SPECIAL: never merged")
    vmg = VMG.of(b, b.vm_start, b.vm_end, prev=a, rmap_model=state.rmap_model)
    return can_vma_merge_after(vmg, a)


# --- the anon_vma a new VMA may share -----------------------------------


def anon_vma_compatible(a: VMA, b: VMA) -> tuple[bool, str]:
    """Models mm/vma.c:anon_vma_compatible(): could b share a's anon_vma?

    Adjacent, same file, flags equal but for read/write/exec (mprotect may
    differ), and pgoff linear across the boundary.
    """
    if a.vm_end != b.vm_start:
        return False, f"not adjacent: {a.vm_end:#x} != {b.vm_start:#x}"
    if a.shmem != b.shmem:
        return False, "different files"
    differ = (a.vm_flags ^ b.vm_flags) & ~VM_ACCESS_FLAGS
    if differ:
        return False, "flags differ: " + ",".join(flag_names(differ))
    expected = a.vm_pgoff + ((b.vm_start - a.vm_start) >> PAGE_SHIFT)
    if b.vm_pgoff != expected:
        return False, f"pgoff {b.vm_pgoff:#x} != {a.vm_pgoff:#x} + {a.pages}"
    return True, "adjacent, same flags but for rwx, pgoff linear"


def find_mergeable_anon_vma(k: Kernel, vma: VMA) -> int | None:
    """Models mm/vma.c:find_mergeable_anon_vma(): reuse a neighbour's anon_vma.

    Tries next first, then prev: the neighbour must be compatible and its
    anon_vma must be its only chain (not a fork child), so that folios
    later faulted here can be found through it.
    """
    if k.state.rmap_model == "cow_context":
        return None
    nxt = find_vma_next(k.state, vma)
    prev = find_vma_prev(k.state, vma)
    for name, old, a, b in (("next", nxt, vma, nxt), ("prev", prev, prev, vma)):
        if old is None or a is None or b is None:
            k.event("find_mergeable_anon_vma", f"{name}: none")
            continue
        ok, why = anon_vma_compatible(a, b)
        if not ok:
            k.event("find_mergeable_anon_vma", f"{name} vma#{old.id} not reused: {why}")
            continue
        if old.anon_vma is None:
            k.event("find_mergeable_anon_vma", f"{name} vma#{old.id} not reused: no anon_vma")
            continue
        if len(old.avc) != 1:
            k.event(
                "find_mergeable_anon_vma",
                f"{name} vma#{old.id} not reused: {len(old.avc)} anon_vma_chains"
                " (a fork child; list_is_singular fails)",
                chains=len(old.avc),
            )
            continue
        k.event(
            "find_mergeable_anon_vma",
            f"reuse anon_vma#{old.anon_vma} of {name} vma#{old.id}: {why}",
        )
        return old.anon_vma
    return None


# --- merging ----------------------------------------------------------------


def dup_anon_vma(k: Kernel, dst: VMA, src: VMA) -> VMA:
    """Models mm/vma.c:dup_anon_vma(): an unfaulted target takes src's anon_vma.

    The target is chained to every anon_vma src is chained to, so rmap
    still finds the folios src's range brings with it. Under cow_context an
    empty stub, as the branch has it (cow_context.DUP_ANON_VMA_STUB).
    """
    dst = k.vma(dst.id)
    src = k.state.vmas.get(src.id, src)
    if k.state.rmap_model == "cow_context":
        if src.anon_vma is not None and dst.anon_vma is None:
            k.unfinished(
                "dup_anon_vma",
                f"vma#{dst.id} stays unfaulted (anon_vma NULL) while it takes in the"
                f" faulted range of vma#{src.id}",
                cow_context.DUP_ANON_VMA_STUB,
            )
        return dst
    if src.anon_vma is not None and dst.anon_vma is None:
        dst = k.put_vma(replace(dst, anon_vma=src.anon_vma))
        dst = anon_vma_clone(k, dst, src)
        k.event("dup_anon_vma", f"vma#{dst.id} takes {_av(src.anon_vma)} of vma#{src.id}")
    return dst


def remove_vma(k: Kernel, vma: VMA, linked: bool = True) -> None:
    """Models mm/vma.c:remove_vma(): free a VMA that munmap or exit removed
    (out of its mm's tree too unless `linked` is False: MAP_FIXED detached
    it already); under cow_context, cow_context_vma_unmap() first."""
    if k.state.rmap_model == "cow_context":
        cow_context.cow_context_vma_unmap(k, vma)
    if linked:
        k.unlink_vma(vma)
    else:
        k.free_vma(vma.id)


def remove_merged_vma(k: Kernel, vma: VMA) -> None:
    """Models vma_complete()'s removal: anon_vma_merge(), then free the VMA."""
    vma = k.vma(vma.id)
    if vma.anon_vma is not None or vma.avc:
        vma = unlink_anon_vmas(k, vma)
    k.unlink_vma(vma)


def vma_expand(k: Kernel, vmg: VMG) -> VMA:
    """Models mm/vma.c:vma_expand(): grow the target over the range (and next).

    With the 6.18.8 fix, a target merged with a VMA being copied by mremap
    first takes that VMA's anon_vma (dup_anon_vma from copied_from).
    """
    target = vmg.target
    assert target is not None
    nxt = vmg.next
    remove_next = nxt is not None and target.id != nxt.id and vmg.end == nxt.vm_end
    with vma_locks(k, target, nxt if remove_next else None):
        if remove_next:
            assert nxt is not None
            dup_anon_vma(k, target, nxt)
        if vmg.copied_from is not None:
            dup_anon_vma(k, target, vmg.copied_from)
        _cow_context_adjust(k, target.id, vmg.start, vmg.end)  # commit_merge()
        target = k.put_vma(
            replace(k.vma(target.id), vm_start=vmg.start, vm_end=vmg.end, vm_pgoff=vmg.pgoff)
        )
        if remove_next:
            assert nxt is not None
            remove_merged_vma(k, nxt)
    k.sort_vmas(target.mm)
    return k.vma(target.id)


def vma_locks(k: Kernel, *vmas: VMA | None) -> contextlib.ExitStack:
    """Models vma_start_write() on each VMA a merge or split changes, and
    vma_prepare()'s anon_vma_lock_write() on the target's anon_vma root."""
    stack = contextlib.ExitStack()
    present = [v for v in vmas if v is not None]
    for vma in present:
        stack.enter_context(k.lock(Lock.vma_write(vma.id)))
    anon = next((k.vma(v.id).anon_vma for v in present if k.vma(v.id).anon_vma), None)
    if anon is not None and k.state.rmap_model == "anon_vma":
        root = k.anon_vma(anon).root
        stack.enter_context(k.lock(Lock.anon_vma_write(root)))
    return stack


def _cow_context_adjust(k: Kernel, vma_id: int, start: int, end: int) -> None:
    """commit_merge()'s cow_context_vma_adjust() of a VMA whose range changes."""
    if k.state.rmap_model == "cow_context":
        cow_context.cow_context_vma_adjust(k, k.vma(vma_id), start, end)


def vma_merge_new_range(k: Kernel, vmg: VMG, fn: str = "vma_merge_new_range") -> VMA | None:
    """Models mm/vma.c:vma_merge_new_range(): merge a range not yet mapped.

    Used by mmap, in-place growth (vma_merge_extend) and mremap's copy_vma.
    Success extends prev, prepends to next, or spans both (deleting next).
    """
    prev, nxt = vmg.prev, vmg.next
    if vmg.flags & VM_SPECIAL:
        k.event(fn, "VM_SPECIAL: no merge", rule=Rule(fn, "VM_SPECIAL"))
        return None
    if prev is None and nxt is None:
        k.event(fn, "no neighbours: no merge")
        return None
    end = vmg.end
    left = can_vma_merge_left(k, vmg, fn)
    right = not vmg.just_expand and can_vma_merge_right(k, vmg, left, fn)
    if right:
        assert nxt is not None
        vmg.end = nxt.vm_end
        vmg.target = nxt
    if left:
        assert prev is not None
        vmg.start = prev.vm_start
        vmg.target = prev
        vmg.pgoff = prev.vm_pgoff
        if not right:
            vmg.end = end
    if vmg.target is None:
        return None
    how = "prev and next" if left and right else "prev" if left else "next"
    target = vma_expand(k, vmg)
    k.event(fn, f"merged with {how}: vma#{target.id} now {target.vm_start:#x}-{target.vm_end:#x}")
    return target


def vma_merge_existing_range(
    k: Kernel, vmg: VMG, fn: str = "vma_merge_existing_range"
) -> VMA | None:
    """Models mm/vma.c:vma_merge_existing_range(): merge part of a VMA with
    its neighbours after a change of attributes (mprotect, madvise).

    Only a range touching middle's start can join prev, only one touching
    its end can join next; both together delete middle and next. A
    boundary that moves inside middle splits a huge PMD it cuts
    (commit_merge, vma_adjust_trans_huge).
    """
    middle = vmg.middle
    assert middle is not None
    start, end = vmg.start, vmg.end
    left_side = start == middle.vm_start
    right_side = end == middle.vm_end
    if vmg.flags & VM_SPECIAL:
        k.event(fn, "VM_SPECIAL: no merge", rule=Rule(fn, "VM_SPECIAL"))
        return None
    if not left_side and not right_side:
        k.event(
            fn,
            "range strictly inside vma: no neighbour to merge with",
            rule=Rule("vma_merge_existing_range", "neither side"),
        )
        return None
    left = can_vma_merge_left(k, vmg, fn) if left_side else False
    if right_side:
        vmg.next = find_vma_next(k.state, k.vma(middle.id))
        right = can_vma_merge_right(k, vmg, left, fn)
    else:
        right = False
    if not left and not right:
        return None
    remove_middle = left_side and right_side
    prev, nxt = vmg.prev, vmg.next
    with vma_locks(k, prev if left else None, middle, nxt if right else None):
        if left and right:
            assert prev is not None and nxt is not None
            dup_anon_vma(k, prev, nxt if nxt.anon_vma is not None else middle)
            _cow_context_adjust(k, prev.id, prev.vm_start, nxt.vm_end)
            target = k.put_vma(replace(k.vma(prev.id), vm_end=nxt.vm_end))
            remove_merged_vma(k, middle)
            remove_merged_vma(k, nxt)
            how = "prev, middle and next"
        elif left:
            assert prev is not None
            dup_anon_vma(k, prev, middle)
            _cow_context_adjust(k, prev.id, prev.vm_start, end)
            target = k.put_vma(replace(k.vma(prev.id), vm_end=end))
            if remove_middle:
                remove_merged_vma(k, middle)
            else:
                _cow_context_adjust(k, middle.id, end, middle.vm_end)
                m = k.vma(middle.id)
                split_huge_pmd_address(k, m, end)  # vma_adjust_trans_huge()
                k.put_vma(
                    replace(
                        m, vm_start=end, vm_pgoff=m.vm_pgoff + ((end - m.vm_start) >> PAGE_SHIFT)
                    )
                )
            how = "prev"
        else:
            assert nxt is not None
            dup_anon_vma(k, nxt, middle)
            n = k.vma(nxt.id)
            if remove_middle:
                _cow_context_adjust(k, nxt.id, start, nxt.vm_end)
                n = k.vma(nxt.id)
                pglen = (end - start) >> PAGE_SHIFT
                target = k.put_vma(replace(n, vm_start=start, vm_pgoff=n.vm_pgoff - pglen))
                remove_merged_vma(k, middle)
            else:
                _cow_context_adjust(k, middle.id, middle.vm_start, start)
                _cow_context_adjust(k, nxt.id, start, nxt.vm_end)
                n = k.vma(nxt.id)
                m = k.vma(middle.id)
                split_huge_pmd_address(k, m, start)  # vma_adjust_trans_huge()
                k.put_vma(replace(m, vm_end=start))
                target = k.put_vma(
                    replace(
                        n,
                        vm_start=start,
                        vm_pgoff=n.vm_pgoff - ((n.vm_start - start) >> PAGE_SHIFT),
                    )
                )
            how = "next"
    k.sort_vmas(target.mm)
    target = k.vma(target.id)
    k.event(fn, f"merged with {how}: vma#{target.id} now {target.vm_start:#x}-{target.vm_end:#x}")
    return target


# --- splitting and modifying ---------------------------------------------------


class SplitError(Exception):
    """split_vma() failed (map_count at sysctl_max_map_count): -ENOMEM."""


def split_vma(k: Kernel, vma: VMA, addr: int, new_below: bool) -> tuple[VMA, VMA]:
    """Models mm/vma.c:__split_vma(): cut a VMA in two at addr.

    Both halves keep the anon_vma and get a clone of every chain, so they
    stay mergeable while their pgoffs stay linear. Under cow_context the
    shrunk VMA's remap entries are adjusted and the new piece remapped
    against the unsplit VMA's start (cow_context.SPLIT_REMAP). Returns
    (lower, upper).
    """
    if len(k.mm(vma.mm).vmas) >= MAX_MAP_COUNT:
        raise SplitError
    with vma_locks(k, vma):
        split_huge_pmd_address(k, vma, addr)
        ident = k.new_id()
        delta = (addr - vma.vm_start) >> PAGE_SHIFT
        if new_below:
            new = replace(vma, id=ident, vm_end=addr, avc=())
        else:
            new = replace(vma, id=ident, vm_start=addr, vm_pgoff=vma.vm_pgoff + delta, avc=())
        if new.anon_vma is not None:
            new = k.put_vma(new)
            new = anon_vma_clone(k, new, vma)
        orig_addr = vma.vm_start
        if new_below:
            _cow_context_adjust(k, vma.id, addr, vma.vm_end)
            vma = k.put_vma(replace(k.vma(vma.id), vm_start=addr, vm_pgoff=vma.vm_pgoff + delta))
        else:
            _cow_context_adjust(k, vma.id, vma.vm_start, addr)
            vma = k.put_vma(replace(k.vma(vma.id), vm_end=addr))
        k.link_vma(new)
        new = k.vma(ident)
        if k.state.rmap_model == "cow_context":
            cow_context.cow_context_do_remap(k, new, orig_addr, cow_context.SPLIT_REMAP)
    return (new, vma) if new_below else (vma, new)


def vma_modify(
    k: Kernel, prev: VMA | None, vma: VMA, start: int, end: int, flags: int, fn: str
) -> VMA:
    """Models mm/vma.c:vma_modify(): the VMA that will cover [start, end).

    First tries to merge the changed range with its neighbours; otherwise
    splits the VMA at start and end. The caller then sets the new flags.
    """
    vmg = VMG.of(vma, start, end, prev=prev, flags=flags, rmap_model=k.state.rmap_model)
    merged = vma_merge_existing_range(k, vmg, fn)
    if merged is not None:
        return merged
    if vma.vm_start < start:
        _, vma = split_vma(k, vma, start, new_below=True)
        k.event(fn, f"split at {start:#x}")
    if vma.vm_end > end:
        vma, _ = split_vma(k, vma, end, new_below=False)
        k.event(fn, f"split at {end:#x}")
    return k.vma(vma.id)


def copy_vma(
    k: Kernel, vma: VMA, addr: int, length: int, pgoff: int, relocate: bool = False
) -> tuple[VMA, VMA, bool, bool]:
    """Models mm/vma.c:copy_vma(): the destination VMA of an mremap move.

    An unfaulted anonymous VMA takes the pgoff of its new address, so it can
    merge anywhere; a faulted one keeps its pgoff and merges only where that
    lines up. Tries vma_merge_new_range() first, else duplicates the VMA.
    With MREMAP_RELOCATE_ANON (the v1 series) a failed merge gives the new
    VMA a linear pgoff and no anon_vma (to be prepared and relocated into).
    Returns (new_vma, vma, need_rmap_locks, relocate).
    """
    fn = "copy_vma"
    faulted = not (vma.is_anonymous() and vma.anon_vma is None)
    if not faulted:
        pgoff = addr >> PAGE_SHIFT
        k.event(fn, f"unfaulted: pgoff re-based to {pgoff:#x}", pgoff=pgoff)
    prev = vma_before(k.state, vma.mm, addr)
    nxt = find_vma(k.state, vma.mm, addr)
    vmg = VMG.of(
        vma,
        addr,
        addr + length,
        prev=prev,
        next=nxt,
        middle=None,
        copied_from=vma,
        rmap_model=k.state.rmap_model,
    )
    vmg.pgoff = pgoff
    new = vma_merge_new_range(k, vmg, fn)
    if relocate:
        if new is not None:
            k.event(fn, "ordinary merge worked: no relocation needed")
            relocate = False
        else:
            pgoff = addr >> PAGE_SHIFT
            k.event(fn, f"no merge: relocate, new vma gets linear pgoff {pgoff:#x}", pgoff=pgoff)
    if new is not None:
        if new.vm_start <= vma.vm_start < new.vm_end:
            k.event(fn, f"the source vma#{vma.id} was merged into vma#{new.id} (unfaulted)")
            vma = new
        else:
            vma = k.vma(vma.id)
        return new, vma, new.vm_pgoff <= vma.vm_pgoff, relocate
    vma = k.vma(vma.id)
    ident = k.new_id()
    new = replace(vma, id=ident, vm_start=addr, vm_end=addr + length, vm_pgoff=pgoff, avc=())
    if relocate:
        new = k.put_vma(replace(new, anon_vma=None))
    elif new.anon_vma is not None:
        new = k.put_vma(new)
        new = anon_vma_clone(k, new, vma)
    k.link_vma(new)
    k.event(fn, f"new vma#{ident} {addr:#x}-{addr + length:#x} pgoff {pgoff:#x}")
    if k.state.rmap_model == "cow_context" and faulted:
        cow_context.cow_context_do_remap(k, k.vma(ident), vma.vm_start)
    return k.vma(ident), vma, False, relocate


def vma_merge_extend(k: Kernel, vma: VMA, delta: int) -> VMA | None:
    """Models mm/vma.c:vma_merge_extend(): grow vma as a new-range merge with
    itself as prev, which may also absorb the next VMA."""
    vmg = VMG.of(
        vma, vma.vm_end, vma.vm_end + delta, prev=vma, middle=None, rmap_model=k.state.rmap_model
    )
    vmg.next = find_vma_next(k.state, vma)
    return vma_merge_new_range(k, vmg, "vma_merge_extend")


# --- munmap, and growing a stack -------------------------------------------


def gather_munmap_vmas(k: Kernel, mm: str, start: int, end: int) -> list[VMA]:
    """Models mm/vma.c:vms_gather_munmap_vmas(): split the VMAs at the edges
    of [start, end) and return those inside it (to be removed)."""
    vmas = vmas_in_range(k.state, mm, start, end)
    if not vmas:
        return []
    first, last = vmas[0], vmas[-1]
    try:
        if first.vm_start < start:
            if end < first.vm_end and len(k.mm(mm).vmas) >= MAX_MAP_COUNT:
                raise SplitError
            _, first = split_vma(k, first, start, new_below=True)
            k.event("vms_gather_munmap_vmas", f"split vma#{first.id} at {start:#x}")
            if last.id == first.id or last.vm_start < start:
                last = first
        if last.vm_end > end:
            last, _ = split_vma(k, k.vma(last.id), end, new_below=False)
            k.event("vms_gather_munmap_vmas", f"split vma#{last.id} at {end:#x}")
    except SplitError as err:
        raise SyscallError("ENOMEM", "split_vma: map_count at max_map_count") from err
    return vmas_in_range(k.state, mm, start, end)


def expand_downwards(k: Kernel, mm: str, addr: int) -> VMA | None:
    """Models mm/vma.c:expand_downwards(): a fault just below a
    VM_GROWSDOWN VMA grows it, if the stack guard gap to prev allows."""
    vma = find_vma(k.state, mm, addr)
    if vma is None or not vma.vm_flags & VM_GROWSDOWN:
        return None
    addr &= ~(PAGE_SIZE - 1)
    prev = vma_before(k.state, mm, vma.vm_start)
    if prev is not None and addr - prev.vm_end < STACK_GUARD_GAP:
        return None
    if vma.anon_vma is None:
        vma = anon_vma_prepare(k, vma, find_mergeable_anon_vma(k, vma))
    grow = (vma.vm_start - addr) >> PAGE_SHIFT
    _cow_context_adjust(k, vma.id, addr, vma.vm_end)
    vma = k.put_vma(replace(k.vma(vma.id), vm_start=addr, vm_pgoff=vma.vm_pgoff - grow))
    k.sort_vmas(mm)
    k.event("expand_downwards", f"stack vma#{vma.id} grows down to {addr:#x}")
    return vma
