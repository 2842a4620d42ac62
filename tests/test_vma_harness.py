"""The kernel's tools/testing/vma cases (mm_model.md §6.1) on the engine.

Like the kernel's userland harness, these call the merge functions
directly on hand-built VMAs: addresses are in pages, pgoff equals the page
number unless stated, and "X" is one shared anon_vma. Cases about vm_ops
close hooks are left out: the engine models anonymous memory only, which
has no vm_ops.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.invariants import check
from engine.mm_types import (
    VM_DONTEXPAND,
    VM_IO,
    VM_MAYREAD,
    VM_MAYWRITE,
    VM_MIXEDMAP,
    VM_PFNMAP,
    VM_READ,
    VM_WRITE,
    VMA,
)
from engine.mmap import do_mmap
from engine.rmap import anon_vma_alloc, link_avc
from engine.sim.kernel import Kernel
from engine.uapi import MAP, PROT
from engine.vma import (
    VMG,
    copy_vma,
    find_vma,
    find_vma_prev,
    vma_before,
    vma_merge_existing_range,
    vma_merge_extend,
    vma_merge_new_range,
    vma_modify,
)

P = 0x1000
RW = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE


def alloc(k: Kernel, start: int, end: int, pgoff: int | None = None, flags: int = RW) -> VMA:
    """A VMA of pages [start, end) (the harness's alloc_and_link_vma)."""
    vma = VMA(k.new_id(), "main", start * P, end * P, start if pgoff is None else pgoff, flags)
    return k.link_vma(vma)


def root(k: Kernel) -> int:
    """A fresh root anon_vma (self-parented: num_children 1)."""
    av = anon_vma_alloc(k)
    return k.put_anon_vma(replace(av, num_children=1)).id


def give(k: Kernel, vma: VMA, av: int) -> VMA:
    """Fault vma into anon_vma av: one chain, as __anon_vma_prepare leaves it."""
    vma = k.put_vma(replace(k.vma(vma.id), anon_vma=av))
    vma = link_avc(k, vma, av)
    a = k.anon_vma(av)
    k.put_anon_vma(replace(a, num_active_vmas=a.num_active_vmas + 1))
    return k.vma(vma.id)


def layout(k: Kernel) -> list[tuple[int, int, int]]:
    """(start, end, pgoff) of every VMA, in pages."""
    return [(v.vm_start // P, v.vm_end // P, v.vm_pgoff) for v in k.state.mm_vmas("main")]


def merge_new(
    k: Kernel, start: int, end: int, pgoff: int | None = None, flags: int = RW
) -> VMA | None:
    """vma_merge_new_range() of pages [start, end), as mmap would try it."""
    vmg = VMG(
        "main",
        start * P,
        end * P,
        start if pgoff is None else pgoff,
        flags,
        None,
        None,
        prev=vma_before(k.state, "main", start * P),
        next=find_vma(k.state, "main", end * P),
    )
    return vma_merge_new_range(k, vmg)


def modify(k: Kernel, vma: VMA, start: int, end: int, flags: int) -> VMA:
    """vma_modify_flags() on pages [start, end) of vma, then set the flags."""
    vma = k.vma(vma.id)
    prev = find_vma_prev(k.state, vma) if start * P == vma.vm_start else vma
    out = vma_modify(k, prev, vma, start * P, end * P, flags, "vma_modify_flags")
    return k.put_vma(replace(out, vm_flags=flags))


def clean(k: Kernel) -> None:
    assert check(k.state) == []


def test_simple_merge() -> None:
    # 012
    # A B    new [1,2) between them
    # AAA
    k = Kernel()
    alloc(k, 0, 1)
    alloc(k, 2, 3)
    assert merge_new(k, 1, 2) is not None
    assert layout(k) == [(0, 3, 0)]
    clean(k)


def test_simple_modify() -> None:
    # 012
    # AAA    modify [1,2): split out, the original struct keeps the middle
    # ABC
    k = Kernel()
    a = alloc(k, 0, 3)
    out = modify(k, a, 1, 2, RW & ~VM_WRITE)
    assert out.id == a.id
    assert layout(k) == [(0, 1, 0), (1, 2, 1), (2, 3, 2)]
    clean(k)


def test_simple_expand_and_shrink() -> None:
    # 012
    # A      expanded by two pages, then shrunk back
    # AAA
    k = Kernel()
    a = alloc(k, 0, 1)
    assert vma_merge_extend(k, a, 2 * P) is not None
    assert layout(k) == [(0, 3, 0)]
    from engine.mmap import do_vmi_munmap

    do_vmi_munmap(k, "main", 1 * P, 2 * P)
    assert layout(k) == [(0, 1, 0)]
    clean(k)


def test_merge_new() -> None:
    # 0123456789abc
    # AA B   DD  C     no merges yet (4 VMAs)
    # AAAA   DD  C     new [2,3): A takes B's anon_vma, B deleted
    k = Kernel()
    x = root(k)
    a = alloc(k, 0, 2)
    b = give(k, alloc(k, 3, 4), x)
    c = alloc(k, 0xB, 0xC)
    d = alloc(k, 7, 9)
    assert len(layout(k)) == 4
    merged = merge_new(k, 2, 3)
    assert merged is not None and merged.id == a.id and merged.anon_vma == x
    assert b.id not in k.state.vmas and len(layout(k)) == 3
    # AAAAA  DD  C     new [4,5)
    merge_new(k, 4, 5)
    assert layout(k)[0] == (0, 5, 0)
    # AAAAA DDD  C     D (faulted in X) prepended by new [6,7)
    give(k, d, x)
    merged = merge_new(k, 6, 7)
    assert merged is not None and merged.id == d.id and layout(k)[1] == (6, 9, 6)
    # AAAAAAAAA  C     new [5,6) joins A and D: D deleted
    merge_new(k, 5, 6)
    assert layout(k) == [(0, 9, 0), (0xB, 0xC, 0xB)] and d.id not in k.state.vmas
    # AAAAAAAAA CC     C in X, new [a,b) prepends C; then [9,a) joins everything
    give(k, c, x)
    merge_new(k, 0xA, 0xB)
    assert layout(k)[1] == (0xA, 0xC, 0xA)
    merge_new(k, 9, 0xA)
    assert layout(k) == [(0, 0xC, 0)]
    clean(k)


@pytest.mark.parametrize(
    "special",
    [VM_IO, VM_DONTEXPAND, VM_PFNMAP, VM_MIXEDMAP],
    ids=["VM_IO", "VM_DONTEXPAND", "VM_PFNMAP", "VM_MIXEDMAP"],
)
def test_special_flags_never_merge(special: int) -> None:
    # 012
    # SSn    new [2,3) with the same special flag: no merge
    # SS|S   an existing [2,3) next to it: no merge either
    k = Kernel()
    alloc(k, 0, 2, flags=RW | special)
    assert merge_new(k, 2, 3, flags=RW | special) is None
    v = alloc(k, 2, 3, flags=RW | special)
    vmg = VMG.of(v, v.vm_start, v.vm_end, prev=find_vma_prev(k.state, v))
    assert vma_merge_existing_range(k, vmg) is None


def test_merge_existing() -> None:
    # 0123456789
    #   VVVVNNN     modify [3,6) of V to N's flags: N takes it
    #   VNNNNNN
    k = Kernel()
    x = root(k)
    ro = RW & ~VM_WRITE
    v = give(k, alloc(k, 2, 6), x)
    n = alloc(k, 6, 9, flags=ro)
    modify(k, v, 3, 6, ro)
    assert layout(k) == [(2, 3, 2), (3, 9, 3)]
    assert k.vma(n.id).anon_vma == x  # dup_anon_vma(next, middle)
    #   VNNNNNN     all of V: N spans [2,9), V deleted
    modify(k, k.vma(v.id), 2, 3, ro)
    assert layout(k) == [(2, 9, 2)] and v.id not in k.state.vmas
    clean(k)


def test_merge_existing_strictly_inside_does_not_merge() -> None:
    k = Kernel()
    alloc(k, 0, 3)
    v = alloc(k, 3, 8, flags=RW & ~VM_WRITE)
    alloc(k, 8, 9)
    vmg = VMG.of(v, 4 * P, 6 * P, prev=v, flags=RW)
    assert vma_merge_existing_range(k, vmg) is None


def test_anon_vma_non_mergeable() -> None:
    # 0123456789
    # PPPVVVVNN     P in X, V unfaulted, N in Y: modifying all of V
    # PPPPPPPNN     merges with P only: X and Y cannot become one VMA
    k = Kernel()
    x, y = root(k), root(k)
    ro = RW & ~VM_WRITE
    p = give(k, alloc(k, 0, 3), x)
    v = alloc(k, 3, 7, flags=ro)
    n = give(k, alloc(k, 7, 9), y)
    out = modify(k, v, 3, 7, RW)
    assert out.id == p.id and layout(k) == [(0, 7, 0), (7, 9, 7)]
    assert k.vma(n.id).anon_vma == y
    clean(k)


def test_dup_anon_vma_when_only_next_is_faulted() -> None:
    # 012345678
    # PPPVVVNN     only N faulted; modify V: P spans all and takes N's anon_vma
    k = Kernel()
    x = root(k)
    ro = RW & ~VM_WRITE
    p = alloc(k, 0, 3)
    v = alloc(k, 3, 6, flags=ro)
    give(k, alloc(k, 6, 8), x)
    out = modify(k, v, 3, 6, RW)
    assert out.id == p.id and layout(k) == [(0, 8, 0)]
    assert k.vma(p.id).anon_vma == x and k.vma(p.id).avc == (x,)
    clean(k)


def test_merge_extend_absorbs_next() -> None:
    # 0123
    # A  B     A extended by 2 pages: reaches B, one VMA
    # AAAA
    k = Kernel()
    a = alloc(k, 0, 1)
    alloc(k, 3, 4)
    assert vma_merge_extend(k, a, 2 * P) is not None
    assert layout(k) == [(0, 4, 0)]


def test_copy_vma() -> None:
    # 012345678
    #    VV       unfaulted V moved to [0,2): a new VMA, pgoff re-based to 0
    # NN
    k = Kernel()
    v = alloc(k, 3, 5)
    new, _, _, _ = copy_vma(k, v, 0, 2 * P, 3)
    assert new.id != v.id and (new.vm_start, new.vm_end, new.vm_pgoff) == (0, 2 * P, 0)
    # 012345678
    # VV    NN     V moved to [4,6) next to N [6,8): merged into N
    k = Kernel()
    v = alloc(k, 0, 2)
    n = alloc(k, 6, 8)
    new, _, _, _ = copy_vma(k, v, 4 * P, 2 * P, 0)
    assert new.id == n.id and (new.vm_start, new.vm_end) == (4 * P, 8 * P)


def test_mmap_region_basic() -> None:
    # four 3-page MAP_FIXED mappings, pgoff = addr >> 12: two VMAs in the end
    k = Kernel()
    flags = MAP["MAP_PRIVATE"] | MAP["MAP_ANONYMOUS"] | MAP["MAP_FIXED"]
    prot = PROT["PROT_READ"] | PROT["PROT_WRITE"]
    for addr in (0x300000, 0x250000, 0x303000, 0x24D000):
        do_mmap(k, "main", addr, 3 * P, prot, flags, -1, 0)
    spans = [(v.vm_start, v.vm_end) for v in k.state.mm_vmas("main")]
    assert spans == [(0x24D000, 0x253000), (0x300000, 0x306000)]
    clean(k)
