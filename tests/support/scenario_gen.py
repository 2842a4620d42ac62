"""A seeded generator of scenario source text for differential testing.

`generate(seed, family)` returns a scenario (the C subset of
docs' scenario language) built from `random.Random(f"{family}:{seed}")`, so the
same (family, seed) always gives the same text. Every family except
"placement" works inside a PROT_NONE carve-out mapped first with
mmap(NULL, ...), like the kernel's merge.c selftests: the carve-out lies at
the top of the mmap area, and every MAP_FIXED mapping, unmap, mprotect,
madvise and mremap target stays inside its first USABLE pages. Its last
RESERVE pages are never touched, so nothing grows into the executor's
[vvar]/[vdso] above it on the real kernel (which the simulation does not
model).

Only mainline calls are generated: never pin/unpin/gup_fast_pin/swapout/
migrate_entry nor the unmerged MREMAP_RELOCATE_ANON flags.
"""

from __future__ import annotations

import random
from collections.abc import Callable

USABLE = 64
RESERVE = 8
MAX_STATEMENTS = 39
GUARD = 1000  # not a 2 MiB multiple: placed right under [vvar]

FAMILIES = (
    "mmap_fault",
    "mprotect",
    "munmap",
    "madvise",
    "mremap_inplace",
    "mremap_move",
    "multi_vma",
    "fork",
    "placement",
    "thp",
    "thp_fault",
    "huge_zero",
    "cow",
    "thp_reuse",
    "thp_partial",
    "reclaim",
    "populate",
    "page_tables",
    "shared_anon",
    "mixed",
)
# The families aimed at pages: folios, zero pages, mapcounts, PMD mappings.
# All but shared_anon work in a 2 MiB-aligned area of their own (ThpArea).
PAGE_FAMILIES = FAMILIES[FAMILIES.index("thp_fault") :]
# The families with no carve-out `c`: placement maps with NULL, the others
# map a ThpArea `t`.
NO_CARVEOUT = ("placement", "thp", *(f for f in PAGE_FAMILIES if f != "shared_anon"))

# How many seeds each family is run with by the differential test (the
# page-level sweep, benchmarks/page_sweep.py, runs many more).
SEEDS = {
    "mmap_fault": 30,
    "mprotect": 40,
    "munmap": 25,
    "madvise": 35,
    "mremap_inplace": 35,
    "mremap_move": 50,
    "multi_vma": 40,
    "fork": 45,
    "placement": 25,
    "thp": 30,
    "thp_fault": 30,
    "huge_zero": 30,
    "cow": 40,
    "thp_reuse": 30,
    "thp_partial": 30,
    "reclaim": 35,
    "populate": 30,
    "page_tables": 40,
    "shared_anon": 35,
    "mixed": 30,
}

PRIVATE = "MAP_PRIVATE | MAP_ANONYMOUS"
SHARED = "MAP_SHARED | MAP_ANONYMOUS"
RW = "PROT_READ | PROT_WRITE"
PROTS = ("PROT_NONE", "PROT_READ", RW, "PROT_READ | PROT_WRITE | PROT_EXEC", "PROT_WRITE")
PROT_WEIGHTS = (1, 2, 6, 1, 1)
ADVICE = (
    "MADV_DONTNEED",
    "MADV_HUGEPAGE",
    "MADV_NOHUGEPAGE",
    "MADV_DONTFORK",
    "MADV_DOFORK",
    "MADV_WIPEONFORK",
    "MADV_KEEPONFORK",
    "MADV_NORMAL",
    "MADV_RANDOM",
    "MADV_SEQUENTIAL",
    "MADV_WILLNEED",
    "MADV_FREE",
    "MADV_COLD",
    "MADV_PAGEOUT",
)


class Builder:
    """Statements inside the carve-out `c`, in units of pages."""

    def __init__(self, rng: random.Random, carveout: bool = True) -> None:
        self.rng = rng
        self.lines: list[str] = []
        self.counter = 0
        self.processes = ["main"]
        self.pages_touched = 0
        self.regions: list[tuple[int, int]] = []
        self.base = "c"  # the variable page numbers count from
        if carveout:
            self.lines.append(
                f"char *c = mmap(NULL, {USABLE + RESERVE} * page_size, PROT_NONE, "
                f"{PRIVATE}, -1, 0);"
            )

    # ---- text helpers -------------------------------------------------
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def at(self, page: int, offset: int = 0) -> str:
        """An address inside the carve-out, in one of the forms C code uses."""
        c = self.base
        if offset:
            return f"{c} + {page} * page_size + {offset}"
        if page == 0:
            return c
        return self.rng.choice((f"&{c}[{page} * page_size]", f"{c} + {page} * page_size"))

    @staticmethod
    def pages(n: int) -> str:
        return f"{n} * page_size"

    def emit(self, text: str, process: str = "main") -> None:
        self.lines.append(text if process == "main" else f"{process}: {text}")

    def full(self) -> bool:
        return len(self.lines) >= MAX_STATEMENTS

    def text(self) -> str:
        return "\n".join(self.lines[:MAX_STATEMENTS]) + "\n"

    # ---- random choices -----------------------------------------------
    def prot(self) -> str:
        return self.rng.choices(PROTS, PROT_WEIGHTS)[0]

    def range(self, most: int = 12) -> tuple[int, int]:
        """A random page range; more often than not, at or near a mapping made earlier."""
        rng = self.rng
        if self.regions and rng.random() < 0.65:
            start, n = rng.choice(self.regions)
            start = min(max(start + rng.choice((0, 0, 0, -1, 1, -2, 2)), 0), USABLE - 1)
            n = max(1, min(n + rng.choice((0, 0, -1, 1, -2, 2, 3)), most, USABLE - start))
            if rng.random() < 0.3 and n > 1:
                n = rng.randint(1, n)
            return start, n
        n = rng.randint(1, most)
        start = rng.randint(0, USABLE - n)
        return start, n

    def page(self) -> int:
        start, n = self.range()
        return start + self.rng.randrange(n)

    def mflags(self, fixed: str = "MAP_FIXED") -> str:
        base = SHARED if self.rng.random() < 0.15 else PRIVATE
        extra = [fixed]
        if self.rng.random() < 0.3:
            extra.append("MAP_NORESERVE")
        if self.rng.random() < 0.15:
            extra.append("MAP_POPULATE")
        return " | ".join([base, *extra])

    def process(self) -> str:
        return self.rng.choice(self.processes)

    # ---- statements ---------------------------------------------------
    def mmap(
        self,
        page: int,
        n: int,
        prot: str = RW,
        flags: str | None = None,
        name: str | None = None,
        process: str = "main",
    ) -> str:
        name = name or self.fresh("p")
        flags = flags or f"{PRIVATE} | MAP_FIXED"
        self.regions.append((page, n))
        if "POPULATE" in flags:
            self.pages_touched += n
        self.emit(
            f"char *{name} = mmap({self.at(page)}, {self.pages(n)}, {prot}, {flags}, -1, 0);",
            process,
        )
        return name

    def store(self, page: int, process: str = "main") -> None:
        offset = self.rng.choice((0, 0, 1, 100, 4095))
        value = self.rng.choice(("'x'", "'y'", "1", "0x5a"))
        self.pages_touched += 1
        self.emit(f"{self.base}[{page} * page_size + {offset}] = {value};", process)

    def load(self, page: int, process: str = "main") -> None:
        self.pages_touched += 1
        self.emit(f"char {self.fresh('v')} = {self.base}[{page} * page_size];", process)

    def memset(self, page: int, n: int, process: str = "main") -> None:
        self.pages_touched += n
        self.emit(f"memset({self.at(page)}, 'z', {self.pages(n)});", process)

    def munmap(self, page: int, n: int, process: str = "main") -> None:
        self.emit(f"munmap({self.at(page)}, {self.pages(n)});", process)

    def mprotect(self, page: int, n: int, prot: str, process: str = "main") -> None:
        self.emit(f"mprotect({self.at(page)}, {self.pages(n)}, {prot});", process)

    def madvise(self, page: int, n: int, advice: str, process: str = "main") -> None:
        self.emit(f"madvise({self.at(page)}, {self.pages(n)}, {advice});", process)

    def mremap(
        self,
        page: int,
        old: int,
        new: int,
        flags: str,
        target: int | None = None,
        process: str = "main",
    ) -> str:
        name = self.fresh("r")
        args = [self.at(page), self.pages(old), self.pages(new), flags]
        if target is not None:
            args.append(self.at(target))
        self.emit(f"char *{name} = mremap({', '.join(args)});", process)
        return name

    def fork(self, parent: str = "main") -> str:
        name = self.fresh("child")
        self.emit(f"pid_t {name} = fork();", parent)
        self.processes.append(name)
        return name

    # ---- random operations shared by families -------------------------
    def random_mapping(self, process: str = "main") -> None:
        start, n = self.range(10)
        self.mmap(start, n, self.prot(), self.mflags(), process=process)

    def random_touch(self, process: str = "main") -> None:
        r = self.rng.random()
        if r < 0.45:
            self.store(self.page(), process)
        elif r < 0.65:
            self.load(self.page(), process)
        else:
            start, n = self.range(6)
            self.memset(start, n, process)

    def random_munmap(self, process: str = "main") -> None:
        start, n = self.range(6)
        self.munmap(start, n, process)

    def random_mprotect(self, process: str = "main") -> None:
        start, n = self.range(10)
        self.mprotect(start, n, self.prot(), process)

    def random_madvise(self, process: str = "main") -> None:
        start, n = self.range(10)
        self.madvise(start, n, self.rng.choice(ADVICE), process)

    def random_mremap(self, process: str = "main") -> None:
        rng = self.rng
        start, old = self.range(8)
        r = rng.random()
        if r < 0.4:
            new = rng.randint(1, 10)
            flags = rng.choice(("0", "MREMAP_MAYMOVE"))
            self.mremap(start, old, new, flags, process=process)
            return
        new = old if r < 0.8 else rng.randint(1, 8)
        target = rng.randint(0, USABLE - max(new, 1))
        flags = "MREMAP_MAYMOVE | MREMAP_FIXED"
        if old == new and rng.random() < 0.25:
            flags += " | MREMAP_DONTUNMAP"
        self.mremap(start, old, new, flags, target, process)

    def random_ops(self, weights: dict[Callable[..., None], int], count: int) -> None:
        ops = list(weights)
        w = list(weights.values())
        for _ in range(count):
            if self.full() or self.pages_touched > 1500:
                return
            self.rng.choices(ops, w)[0](process=self.process())


def _layout(b: Builder, count: int, most: int = 8, fault: float = 0.5) -> list[tuple[int, int]]:
    """A few RW private mappings at random places in the carve-out, some faulted."""
    placed = []
    for _ in range(count):
        start, n = b.range(most)
        noreserve = " | MAP_NORESERVE" if b.rng.random() < 0.5 else ""
        b.mmap(start, n, RW, f"{PRIVATE} | MAP_FIXED{noreserve}")
        placed.append((start, n))
        if b.rng.random() < fault:
            b.memset(start, n)
    return placed


# ---- families -----------------------------------------------------------
def _mmap_fault(b: Builder) -> None:
    rng = b.rng
    for _ in range(rng.randint(2, 6)):
        b.random_mapping()
        if rng.random() < 0.6:
            b.random_touch()
    if rng.random() < 0.5:
        start, n = b.range(5)
        b.munmap(start, n)
    for _ in range(rng.randint(1, 3)):
        start, n = b.range(6)
        b.mmap(start, n, b.prot(), b.mflags("MAP_FIXED_NOREPLACE"))
    b.random_ops({b.random_touch: 5, b.random_mapping: 2, b.random_munmap: 1}, rng.randint(5, 20))


def _mprotect(b: Builder) -> None:
    rng = b.rng
    template = rng.randrange(8)
    if template < 5:
        _mprotect_merge_case(b, template)
    else:
        _layout(b, rng.randint(1, 4))
    if rng.random() < 0.3:
        b.random_munmap()
    if rng.random() < 0.3:
        # An unaligned start: EINVAL, nothing changed.
        start, n = b.range(4)
        b.emit(f"mprotect({b.at(start, rng.choice((1, 512, 2048)))}, {b.pages(n)}, PROT_READ);")
    b.random_ops(
        {b.random_mprotect: 6, b.random_touch: 3, b.random_munmap: 1, b.random_mapping: 1},
        rng.randint(4, 16),
    )


def _mprotect_merge_case(b: Builder, which: int) -> None:
    """The merge.c mprotect_* selftests, at a random place, with random sizes."""
    rng = b.rng
    k = rng.randint(1, 5)
    base = rng.randint(0, USABLE - 3 * k - 1)
    noreserve = f"{PRIVATE} | MAP_FIXED | MAP_NORESERVE"
    if rng.random() < 0.25:
        noreserve = f"{PRIVATE} | MAP_FIXED"  # VM_ACCOUNT gets in the way
    if which == 0:  # unfaulted_left
        b.mmap(base, 2 * k, RW, noreserve)
        b.mprotect(base, k, "PROT_READ")
        b.store(base + k)
        b.mprotect(base + k, k, "PROT_READ")
    elif which == 1:  # unfaulted_right
        b.mmap(base, 2 * k, RW, noreserve)
        b.mprotect(base + k, k, "PROT_READ")
        b.store(base)
        b.mprotect(base, k, "PROT_READ")
    elif which == 2:  # unfaulted_both
        b.mmap(base, 3 * k, RW, noreserve)
        b.mprotect(base, k, "PROT_READ")
        b.mprotect(base + 2 * k, k, "PROT_READ")
        b.store(base + k)
        b.mprotect(base + k, k, "PROT_READ")
    elif which == 3:  # faulted_left_unfaulted_right
        b.mmap(base, 3 * k, RW, noreserve)
        b.mprotect(base + 2 * k, k, "PROT_READ")
        b.store(base)
        b.mprotect(base, k, "PROT_READ")
        b.mprotect(base + k, k, "PROT_READ")
    else:  # unfaulted_left_faulted_right
        b.mmap(base, 3 * k, RW, noreserve)
        b.mprotect(base, k, "PROT_READ")
        b.store(base + 2 * k)
        b.mprotect(base + 2 * k, k, "PROT_READ")
        b.mprotect(base + k, k, "PROT_READ")
    if rng.random() < 0.5:
        b.mprotect(base, 3 * k, RW)


def _munmap(b: Builder) -> None:
    rng = b.rng
    _layout(b, rng.randint(1, 5), most=10)
    for _ in range(rng.randint(3, 10)):
        r = rng.random()
        start, n = b.range(8)
        if r < 0.15:
            b.emit(f"munmap({b.at(start, rng.choice((1, 8, 2048)))}, {b.pages(n)});")  # EINVAL
        elif r < 0.25:
            b.emit(f"munmap({b.at(start)}, 0);")  # EINVAL
        elif r < 0.35:
            b.emit(f"munmap({b.at(start)}, {n} * page_size - {rng.choice((1, 100))});")
        else:
            b.munmap(start, n)
        if rng.random() < 0.3:
            b.random_touch()
    # Unmapping what is already gone is fine.
    start, n = b.range(4)
    b.munmap(start, n)
    b.munmap(start, n)
    b.random_ops({b.random_mapping: 2, b.random_munmap: 3, b.random_touch: 2}, rng.randint(2, 10))


def _madvise(b: Builder) -> None:
    rng = b.rng
    _layout(b, rng.randint(1, 4))
    if rng.random() < 0.5:
        # A flag set on the middle splits the VMA; undoing it merges it back.
        start, n = b.range(9)
        if n >= 3:
            advice, undo = rng.choice(
                (
                    ("MADV_HUGEPAGE", "MADV_NOHUGEPAGE"),
                    ("MADV_DONTFORK", "MADV_DOFORK"),
                    ("MADV_WIPEONFORK", "MADV_KEEPONFORK"),
                    ("MADV_RANDOM", "MADV_NORMAL"),
                    ("MADV_SEQUENTIAL", "MADV_NORMAL"),
                )
            )
            b.mmap(start, n, RW, f"{PRIVATE} | MAP_FIXED")
            b.madvise(start + 1, n - 2, advice)
            b.store(start + 1)
            b.madvise(start + 1, n - 2, undo)
    if rng.random() < 0.4:
        b.random_munmap()
    if rng.random() < 0.3:
        start, n = b.range(4)
        b.emit(f"madvise({b.at(start)}, {b.pages(n)}, {rng.choice((5, 7, 99, 1000))});")
    if rng.random() < 0.2:
        start, n = b.range(4)
        b.emit(f"madvise({b.at(start, 16)}, {b.pages(n)}, MADV_NORMAL);")
    b.random_ops(
        {b.random_madvise: 6, b.random_touch: 3, b.random_munmap: 1, b.random_mapping: 1},
        rng.randint(4, 16),
    )


def _mremap_inplace(b: Builder) -> None:
    rng = b.rng
    template = rng.randrange(5)
    if template == 0:  # mremap_expand_merge
        k = rng.randint(1, 4)
        base = rng.randint(0, USABLE - 3 * k)
        b.mmap(base, 3 * k, RW, f"{PRIVATE} | MAP_FIXED")
        if rng.random() < 0.5:
            b.memset(base, 3 * k)
        b.munmap(base + k, k)
        b.mremap(base, k, 2 * k, rng.choice(("0", "MREMAP_MAYMOVE")))
    elif template == 1:  # mremap_expand_merge_offset
        k = rng.randint(1, 4)
        base = rng.randint(0, USABLE - 3 * k)
        b.mmap(base, 3 * k, RW, f"{PRIVATE} | MAP_FIXED")
        if rng.random() < 0.5:
            b.store(base + k)
        b.munmap(base + 2 * k, k)
        b.mremap(base + k, k, 2 * k, rng.choice(("0", "MREMAP_MAYMOVE")))
    elif template == 2:  # mremap_shrink_multiple_vmas
        base = rng.randint(0, USABLE - 10)
        b.mmap(base, 10, RW, f"{PRIVATE} | MAP_FIXED")
        b.memset(base, 10)
        for hole in (1, 3, 5, 7, 9):
            b.munmap(base + hole, 1)
        b.mremap(base, 10, 1, "0")
    else:
        _layout(b, rng.randint(1, 4))
    for _ in range(rng.randint(3, 10)):
        if b.full():
            break
        start, old = b.range(8)
        r = rng.random()
        if r < 0.3:
            new = rng.randint(0, old)  # shrink (0 is EINVAL)
        elif r < 0.9:
            new = old + rng.randint(1, 6)
        else:
            new = old
        b.mremap(start, old, new, rng.choice(("0", "MREMAP_MAYMOVE", "0")))
        if rng.random() < 0.3:
            b.random_touch()
    if rng.random() < 0.2:
        b.emit(f"mremap({b.at(1, 8)}, page_size, 2 * page_size, 0);")  # EINVAL
    if rng.random() < 0.2:
        b.emit(f"mremap({b.at(2)}, page_size, 2 * page_size, 32);")  # EINVAL
    b.random_ops({b.random_touch: 2, b.random_mapping: 1}, rng.randint(0, 4))


def _mremap_move(b: Builder) -> None:
    rng = b.rng
    template = rng.randrange(12)
    if template < 8:
        _mremap_merge_case(b, template)
    else:
        _layout(b, rng.randint(2, 4))
    for _ in range(rng.randint(2, 8)):
        if b.full():
            break
        r = rng.random()
        start, old = b.range(8)
        if r < 0.1:  # overlapping: EINVAL
            target = min(max(start + rng.randint(-old + 1, old - 1), 0), USABLE - old)
            b.mremap(start, old, old, "MREMAP_MAYMOVE | MREMAP_FIXED", target)
        elif r < 0.15:  # misaligned target: EINVAL
            b.emit(
                f"mremap({b.at(start)}, {b.pages(old)}, {b.pages(old)}, "
                f"MREMAP_MAYMOVE | MREMAP_FIXED, {b.at(rng.randrange(USABLE - old), 1024)});"
            )
        elif r < 0.2:  # FIXED without MAYMOVE: EINVAL
            b.mremap(start, old, old, "MREMAP_FIXED", rng.randrange(USABLE - old))
        elif r < 0.25:  # DONTUNMAP with a size change: EINVAL
            b.mremap(start, old, old + 1, "MREMAP_MAYMOVE | MREMAP_DONTUNMAP")
        else:
            b.random_mremap()
        if rng.random() < 0.4:
            b.random_touch()


def _mremap_merge_case(b: Builder, which: int) -> None:
    """The merge.c mremap_* selftests, at random places, sometimes scaled."""
    rng = b.rng
    k = rng.randint(1, 4)
    fixed = "MREMAP_MAYMOVE | MREMAP_FIXED"
    far = USABLE - k  # where things are moved out of the way
    rw = f"{PRIVATE} | MAP_FIXED"
    if which == 0:  # mremap_unfaulted_to_faulted
        b.mmap(1, k, RW, rw)
        b.mmap(20, k, RW, rw)
        b.memset(1, k)
        b.mremap(20, k, k, fixed, far)
        b.mremap(far, k, k, fixed, 1 + k)
    elif which == 1:  # mremap_unfaulted_behind_faulted
        b.mmap(1 + k, k, RW, rw)
        b.memset(1 + k, k)
        b.mmap(30, k, RW, rw)
        b.mremap(30, k, k, fixed, 1)
    elif which == 2:  # between faulted / between faulted+unfaulted
        b.mmap(1, k, RW, rw)
        b.memset(1, k)
        b.mmap(20, k, RW, rw)
        b.mmap(30, k, RW, rw)
        if rng.random() < 0.5:
            b.memset(30, k)
        b.mremap(30, k, k, fixed, far)
        b.mremap(far, k, k, fixed, 1 + 2 * k)
        b.mremap(20, k, k, fixed, 1 + k)
    elif which == 3:  # between correctly placed faulted
        b.mmap(1, 3 * k, RW, rw)
        b.memset(1, 3 * k)
        b.munmap(1 + k, k)
        b.mmap(40, k, RW, rw)
        b.mremap(40, k, k, fixed, 1 + k)
    elif which == 4:  # mremap_correct_placed_faulted
        b.mmap(1, 3 * k, RW, rw)
        b.memset(1, 3 * k)
        b.mremap(1 + k, k, k, fixed, 40)
        b.mremap(1 + 2 * k, k, k, fixed, 50)
        order = [(40, 1 + k), (50, 1 + 2 * k)]
        rng.shuffle(order)
        for src, dst in order:
            b.mremap(src, k, k, fixed, dst)
    elif which == 5:  # faulted_to_unfaulted_prev (DONTUNMAP)
        b.mmap(4, 3, RW, rw)
        b.memset(4, 3)
        b.mremap(4, 3, 3, fixed, 20)
        b.mmap(1, 3, RW, rw)
        b.mremap(20, 3, 3, f"{fixed} | MREMAP_DONTUNMAP", 4)
    elif which == 6:  # faulted_to_unfaulted_next
        b.mmap(1, 3, RW, rw)
        b.memset(1, 3)
        b.mremap(1, 3, 3, fixed, 20)
        b.mmap(4, 3, RW, rw)
        b.mremap(20, 3, 3, f"{fixed} | MREMAP_DONTUNMAP", 1)
    else:  # faulted_to_unfaulted_prev_unfaulted_next / _faulted_next
        faulted_next = rng.random() < 0.5
        b.mmap(4, 6 if faulted_next else 3, RW, rw)
        b.memset(4, 6 if faulted_next else 3)
        b.mremap(4, 3, 3, fixed, 20)
        b.mmap(1, 3, RW, rw)
        if not faulted_next:
            b.mmap(7, 3, RW, rw)
        b.mremap(20, 3, 3, f"{fixed} | MREMAP_DONTUNMAP", 4)


def _multi_vma(b: Builder) -> None:
    rng = b.rng
    fixed = "MREMAP_MAYMOVE | MREMAP_FIXED"
    template = rng.randrange(3)
    if template == 0:  # mremap_move_multiple_vmas: 11p with holes at 1,3,7,9
        base = rng.randint(0, 20)
        b.mmap(base, 11, RW, f"{PRIVATE} | MAP_FIXED")
        if rng.random() < 0.6:
            b.memset(base, 11)
        for hole in (1, 3, 7, 9):
            b.munmap(base + hole, 1)
        tgt = rng.randint(base + 11, USABLE - 11)
        b.mremap(base, 11, 11, fixed + (" | MREMAP_DONTUNMAP" if rng.random() < 0.3 else ""), tgt)
        if rng.random() < 0.5:
            b.mremap(tgt, 11, 11, fixed, base)
    elif template == 1:  # mremap_move_multiple_vmas_split: 10p with a hole at 5
        base = rng.randint(0, 25)
        b.mmap(base, 10, RW, f"{PRIVATE} | MAP_FIXED")
        if rng.random() < 0.6:
            b.memset(base, 10)
        b.munmap(base + 5, 1)
        b.mremap(base + 2, 7, 7, fixed, rng.randint(base + 10, USABLE - 7))
    else:
        _layout(b, rng.randint(3, 6), most=6)
    for _ in range(rng.randint(2, 8)):
        if b.full():
            break
        n = rng.randint(2, 16)
        start = rng.randint(0, USABLE - n)
        choices = [t for t in range(USABLE - n + 1) if t + n <= start or t >= start + n]
        if not choices or rng.random() < 0.1:
            b.mremap(start, n, n, fixed, min(start + 1, USABLE - n))  # overlap: EINVAL
            continue
        flags = fixed + (" | MREMAP_DONTUNMAP" if rng.random() < 0.2 else "")
        b.mremap(start, n, n, flags, rng.choice(choices))
        if rng.random() < 0.3:
            b.random_touch()
        if rng.random() < 0.2:
            b.random_munmap()


def _fork(b: Builder) -> None:
    rng = b.rng
    placed = _layout(b, rng.randint(1, 4), fault=0.7)
    if rng.random() < 0.5:
        start, n = placed[0]
        b.madvise(start, max(1, n // 2), rng.choice(("MADV_DONTFORK", "MADV_WIPEONFORK")))
    if rng.random() < 0.2:
        b.mmap(*b.range(4), RW, f"{SHARED} | MAP_FIXED")
        b.random_touch()
    child = b.fork()
    weights = {
        b.random_touch: 6,
        b.random_mprotect: 2,
        b.random_mremap: 2,
        b.random_munmap: 1,
        b.random_mapping: 1,
        b.random_madvise: 1,
    }
    b.random_ops(weights, rng.randint(3, 10))
    if rng.random() < 0.5:
        # The merge.c forked_target_vma case: the child maps next to a forked VMA.
        start, n = placed[-1]
        if start + n < USABLE:
            n2 = min(3, USABLE - start - n)
            b.mmap(start + n, n2, RW, f"{PRIVATE} | MAP_FIXED", process=child)
    if rng.random() < 0.4 and not b.full():
        b.fork(rng.choice(b.processes))
    b.random_ops(weights, rng.randint(3, 12))


def _placement(b: Builder) -> None:
    """mmap(NULL) and hints: top-down placement and THP alignment; no carve-out."""
    rng = b.rng
    two_mb = 512
    # A guard under the executor's [vvar]/[vdso], which the simulation does not
    # model: nothing below reaches it (munmaps take at most 16 pages, and a
    # hint overlapping the guard is refused on both kernels alike).
    b.emit(f"char *guard = mmap(NULL, {GUARD} * page_size, PROT_NONE, {PRIVATE}, -1, 0);")
    names: list[str] = []
    for _ in range(rng.randint(3, 12)):
        r = rng.random()
        if r < 0.35 or not names:
            n = rng.choice((1, 2, 5, 16, two_mb, 2 * two_mb, two_mb + 1, two_mb - 1))
            flags = SHARED if rng.random() < 0.15 else PRIVATE
            name = b.fresh("m")
            b.emit(f"char *{name} = mmap(NULL, {b.pages(n)}, {b.prot()}, {flags}, -1, 0);")
            names.append(name)
        elif r < 0.55:
            # A hint below something already mapped: free or not.
            base = rng.choice(names)
            off = rng.choice((-1, -3, -600, 0, 1, -two_mb))
            n = rng.choice((1, 4, two_mb))
            name = b.fresh("m")
            hint = f"{base} - {-off} * page_size" if off < 0 else f"{base} + {off} * page_size"
            b.emit(f"char *{name} = mmap({hint}, {b.pages(n)}, {RW}, {PRIVATE}, -1, 0);")
            names.append(name)
        elif r < 0.65:
            base = rng.choice(names)
            name = b.fresh("m")
            b.emit(
                f"char *{name} = mmap({base}, page_size, {RW}, "
                f"{PRIVATE} | MAP_FIXED_NOREPLACE, -1, 0);"
            )
            names.append(name)
        elif r < 0.8:
            base = rng.choice(names)
            b.emit(f"munmap({base}, {b.pages(rng.choice((1, 2, 16)))});")
        elif r < 0.9:
            base = rng.choice(names)
            b.pages_touched += 1
            b.emit(f"{base}[{rng.choice((0, 4096, 8191))}] = 'q';")
        else:
            base = rng.choice(names)
            name = b.fresh("r")
            b.emit(
                f"char *{name} = mremap({base}, page_size, {b.pages(rng.choice((2, 512)))}, "
                "MREMAP_MAYMOVE);"
            )
            names.append(name)


def _thp(b: Builder) -> None:
    """MADV_HUGEPAGE regions in a 2 MiB-aligned area: PMD faults, the huge
    zero page, PMD splits by mprotect, munmap, DONTNEED and misaligned
    moves, and COW of a THP after fork (resident pages tell them apart)."""
    rng = b.rng
    huge = 512  # pages in 2 MiB
    b.emit(f"char *t = mmap(NULL, {8 * huge} * page_size, PROT_NONE, {PRIVATE}, -1, 0);")
    names: list[tuple[str, int, int]] = []
    for slot in rng.sample(range(1, 7), rng.randint(1, 3)):
        n = rng.choice((huge, 2 * huge, huge + 64))
        name = b.fresh("h")
        b.emit(
            f"char *{name} = mmap(t + {slot * huge} * page_size, {n} * page_size, {RW}, {PRIVATE} | MAP_FIXED, -1, 0);"
        )
        if rng.random() < 0.8:
            b.emit(f"madvise({name}, {n} * page_size, MADV_HUGEPAGE);")
        names.append((name, slot * huge, n))
    forked = False
    for _ in range(rng.randint(4, 14)):
        name, base, n = rng.choice(names)
        page = rng.randrange(n)
        r = rng.random()
        who = "child" if forked and rng.random() < 0.4 else "main"
        if r < 0.35:
            b.emit(f"{name}[{page} * page_size + {rng.randrange(4096)}] = 'h';", who)
        elif r < 0.45:
            b.emit(f"char {b.fresh('v')} = {name}[{page} * page_size];", who)
        elif r < 0.55:
            b.emit(f"mprotect({name} + {page} * page_size, page_size, PROT_READ);", who)
        elif r < 0.62:
            b.emit(
                f"madvise({name} + {page} * page_size, {rng.choice((1, 16, huge))} * page_size, MADV_DONTNEED);",
                who,
            )
        elif r < 0.7:
            b.emit(f"munmap({name} + {page} * page_size, {rng.choice((1, 8))} * page_size);", who)
        elif r < 0.85:
            length = rng.choice((huge, 64, 1))
            dest = rng.choice((7 * huge, 7 * huge + 16, 0, 16))
            b.emit(
                f"char *{b.fresh('r')} = mremap({name}, {length} * page_size, {length} * page_size,"
                f" MREMAP_MAYMOVE | MREMAP_FIXED, t + {dest} * page_size);",
                who,
            )
        elif not forked:
            b.emit("pid_t child = fork();")
            forked = True
        else:
            b.emit(f"memset({name} + {page} * page_size, 'c', page_size);", who)


# ---- families aimed at pages -------------------------------------------
HUGE = 512  # pages in 2 MiB


class ThpArea:
    """Statements in a 2 MiB-aligned PROT_NONE area `t` of SLOTS PMDs: each
    region starts on a PMD boundary, so faults there may be THPs."""

    SLOTS = 8

    def __init__(self, b: Builder) -> None:
        self.b = b
        self.regions: list[tuple[str, int, int]] = []  # name, first page, pages
        b.emit(
            f"char *t = mmap(NULL, {self.SLOTS * HUGE} * page_size, PROT_NONE, {PRIVATE}, -1, 0);"
        )

    def region(
        self, slot: int, n: int, hugepage: bool = True, flags: str = PRIVATE, prot: str = RW
    ) -> str:
        name = self.b.fresh("h")
        self.b.emit(
            f"char *{name} = mmap(t + {slot * HUGE} * page_size, {n} * page_size, {prot},"
            f" {flags} | MAP_FIXED, -1, 0);"
        )
        if hugepage:
            self.b.emit(f"madvise({name}, {n} * page_size, MADV_HUGEPAGE);")
        self.regions.append((name, slot * HUGE, n))
        return name

    def pick(self) -> tuple[str, int]:
        """A region and a page in it, often a PMD's first or last page."""
        rng = self.b.rng
        name, _, n = rng.choice(self.regions)
        page = rng.choice((0, HUGE - 1, rng.randrange(n), rng.randrange(n), n - 1))
        return name, min(page, n - 1)

    def write(self, name: str, page: int, who: str = "main") -> None:
        self.b.emit(f"{name}[{page} * page_size + {self.b.rng.randrange(4096)}] = 'w';", who)

    def read(self, name: str, page: int, who: str = "main") -> None:
        self.b.emit(f"char {self.b.fresh('v')} = {name}[{page} * page_size];", who)

    def madvise(self, name: str, page: int, pages: int, advice: str, who: str = "main") -> None:
        self.b.emit(f"madvise({name} + {page} * page_size, {pages} * page_size, {advice});", who)

    def mprotect(self, name: str, page: int, pages: int, prot: str, who: str = "main") -> None:
        self.b.emit(f"mprotect({name} + {page} * page_size, {pages} * page_size, {prot});", who)

    def munmap(self, name: str, page: int, pages: int, who: str = "main") -> None:
        self.b.emit(f"munmap({name} + {page} * page_size, {pages} * page_size);", who)

    def memset(self, name: str, page: int, pages: int, who: str = "main") -> None:
        self.b.emit(f"memset({name} + {page} * page_size, 'm', {pages} * page_size);", who)

    def piece(self) -> tuple[str, int, int]:
        """A region, a start page and a length: part of a PMD, a whole one,
        or a span across a PMD boundary."""
        rng = self.b.rng
        name, _, n = rng.choice(self.regions)
        pages = min(rng.choice((1, 2, 16, 100, HUGE, HUGE - 1)), n)
        start = rng.choice((0, 1, rng.randrange(n), HUGE - 8, n - pages))
        start = max(0, min(start, n - pages))
        return name, start, pages


def _thp_fault(b: Builder) -> None:
    """THP faults: writes allocate a PMD-mapped THP where the aligned 2 MiB
    lies in a MADV_HUGEPAGE VMA with no page table yet; reads map the huge
    zero page; anything else falls back to small pages."""
    rng = b.rng
    area = ThpArea(b)
    for slot in rng.sample(range(0, ThpArea.SLOTS - 1), rng.randint(1, 3)):
        n = rng.choice((HUGE, 2 * HUGE, HUGE + 32, HUGE - 16))
        area.region(slot, n, hugepage=rng.random() < 0.85)
    for _ in range(rng.randint(4, 14)):
        name, page = area.pick()
        r = rng.random()
        if r < 0.4:
            area.write(name, page)
        elif r < 0.6:
            area.read(name, page)
        elif r < 0.7:
            area.memset(name, page, min(rng.choice((1, 3, 64)), HUGE))
        elif r < 0.8:
            name, start, pages = area.piece()
            area.madvise(name, start, pages, rng.choice(("MADV_NOHUGEPAGE", "MADV_HUGEPAGE")))
        elif r < 0.9:
            name, start, pages = area.piece()
            area.madvise(name, start, pages, "MADV_DONTNEED")
        else:
            name, start, pages = area.piece()
            area.madvise(name, start, pages, "MADV_POPULATE_WRITE")


def _huge_zero(b: Builder) -> None:
    """Reads that map the huge zero page, then writes, forks, splits,
    moves and zaps around it."""
    rng = b.rng
    area = ThpArea(b)
    for slot in rng.sample(range(0, ThpArea.SLOTS - 1), rng.randint(1, 2)):
        area.region(slot, rng.choice((HUGE, 2 * HUGE)))
    for name, _, n in list(area.regions):
        area.read(name, rng.randrange(n))
    forked: list[str] = []
    for _ in range(rng.randint(3, 10)):
        name, page = area.pick()
        who = rng.choice(["main", *forked])
        r = rng.random()
        if r < 0.3:
            area.write(name, page, who)
        elif r < 0.45:
            area.read(name, page, who)
        elif r < 0.55 and len(forked) < 2:
            forked.append(b.fork(who))
        elif r < 0.65:
            area.mprotect(name, page, rng.choice((1, 8)), "PROT_READ", who)
        elif r < 0.75:
            name, start, pages = area.piece()
            area.madvise(name, start, pages, "MADV_DONTNEED", who)
        elif r < 0.85:
            name, start, pages = area.piece()
            area.munmap(name, start, pages, who)
        else:
            dest = rng.choice((7 * HUGE, 7 * HUGE + 16))
            length = rng.choice((HUGE, 64))
            b.emit(
                f"char *{b.fresh('r')} = mremap({name}, {length} * page_size, {length} * page_size,"
                f" MREMAP_MAYMOVE | MREMAP_FIXED, t + {dest} * page_size);",
                who,
            )


def _cow(b: Builder) -> None:
    """fork and copy-on-write: who copies and who reuses, in parent, child
    and grandchild, for small folios and THPs (PMD- and PTE-mapped), after
    the others unmapped or zapped their share."""
    rng = b.rng
    area = ThpArea(b)
    small = area.region(0, rng.choice((4, 16)), hugepage=False)
    area.memset(small, 0, 4)
    if rng.random() < 0.8:
        huge = area.region(2, HUGE)
        area.write(huge, rng.randrange(HUGE))
        if rng.random() < 0.3:
            area.mprotect(huge, rng.randrange(HUGE), 1, "PROT_READ")  # PTE-mapped now
            area.mprotect(huge, 0, HUGE, RW)
    processes = ["main"]
    for _ in range(rng.randint(4, 14)):
        r = rng.random()
        who = rng.choice(processes)
        name, page = area.pick()
        if name == small:
            page = rng.randrange(4)
        if r < 0.15 and len(processes) < 4:
            processes.append(b.fork(who))
        elif r < 0.55:
            area.write(name, page, who)
        elif r < 0.65:
            area.read(name, page, who)
        elif r < 0.75:
            area.munmap(name, page, rng.choice((1, 2)), who)
        elif r < 0.85:
            area.madvise(name, page, rng.choice((1, 4, HUGE)), "MADV_DONTNEED", who)
        elif r < 0.92:
            area.munmap(name, 0, rng.choice((HUGE - 1, 1, 511)), who)
        else:
            area.memset(name, page, 1, who)


def _thp_reuse(b: Builder) -> None:
    """Write faults on a THP shared by fork after the other processes
    unmapped or zapped their part of it: a PMD mapping reused whole
    (do_huge_pmd_wp_page), a PTE-mapped large folio reused while one
    process alone maps several of its pages, copied once it maps only the
    faulting page or another process maps some (wp_can_reuse_anon_folio)."""
    rng = b.rng
    area = ThpArea(b)
    huge = area.region(2, HUGE)
    if rng.random() < 0.6:
        area.memset(huge, 0, HUGE)
    else:
        area.write(huge, rng.randrange(HUGE))
    if rng.random() < 0.5:
        page = rng.randrange(HUGE)
        area.mprotect(huge, page, 1, "PROT_READ")  # PTE-mapped from here on
        area.mprotect(huge, page, 1, RW)
    processes = ["main", b.fork()]
    for _ in range(rng.randint(3, 10)):
        who = rng.choice(processes)
        r = rng.random()
        if r < 0.1 and len(processes) < 3:
            processes.append(b.fork(who))
        elif r < 0.5:
            area.write(huge, rng.choice((0, HUGE - 1, rng.randrange(HUGE))), who)
        elif r < 0.7:
            start = rng.choice((0, 1, rng.randrange(HUGE)))
            pages = rng.choice((1, HUGE - start, max(1, HUGE - 1 - start)))
            area.munmap(huge, start, pages, who)
        elif r < 0.85:
            area.madvise(huge, 0, rng.choice((HUGE, HUGE - 1)), "MADV_DONTNEED", who)
        else:
            area.read(huge, rng.randrange(HUGE), who)


def _thp_partial(b: Builder) -> None:
    """A faulted THP, then munmap, mprotect, MADV_DONTNEED or mremap through
    part of it: the PMD is split and the folio stays, PTE-mapped."""
    rng = b.rng
    area = ThpArea(b)
    names = []
    for slot in rng.sample((0, 2, 4), rng.randint(1, 2)):
        name = area.region(slot, rng.choice((HUGE, 2 * HUGE)))
        area.write(name, rng.randrange(HUGE))
        names.append(name)
    fixed = "MREMAP_MAYMOVE | MREMAP_FIXED"
    for _ in range(rng.randint(3, 10)):
        name, start, pages = area.piece()
        who = "main"
        r = rng.random()
        if r < 0.2:
            area.munmap(name, start, pages, who)
        elif r < 0.4:
            area.mprotect(name, start, pages, rng.choice(("PROT_READ", "PROT_NONE", RW)), who)
        elif r < 0.55:
            area.madvise(name, start, pages, "MADV_DONTNEED", who)
        elif r < 0.75:
            dest = rng.choice((6 * HUGE, 6 * HUGE + 16, 7 * HUGE - pages))
            b.emit(
                f"char *{b.fresh('r')} = mremap({name} + {start} * page_size, {pages} * page_size,"
                f" {pages} * page_size, {fixed}, t + {dest} * page_size);"
            )
        elif r < 0.85:
            b.emit(
                f"char *{b.fresh('r')} = mremap({name}, {HUGE} * page_size,"
                f" {rng.choice((HUGE // 2, 1, HUGE - 1))} * page_size, 0);"
            )
        else:
            name, page = area.pick()
            area.write(name, page) if rng.random() < 0.7 else area.read(name, page)
        if rng.random() < 0.3:
            name, page = area.pick()
            area.write(name, page)


def _reclaim(b: Builder) -> None:
    """MADV_FREE, MADV_COLD and MADV_PAGEOUT with no swap device: lazyfree
    folios (small and THP, whole or in part) are discarded unless written
    again; other anonymous memory stays; shmem is unmapped."""
    rng = b.rng
    area = ThpArea(b)
    small = area.region(0, 16, hugepage=False)
    area.memset(small, 0, rng.choice((4, 16)))
    if rng.random() < 0.8:
        huge = area.region(2, HUGE)
        area.write(huge, rng.randrange(HUGE))
    if rng.random() < 0.3:
        shared = area.region(4, 8, hugepage=False, flags=SHARED)
        area.memset(shared, 0, 4)
    if rng.random() < 0.25:
        b.fork()
    advice = ("MADV_FREE", "MADV_FREE", "MADV_PAGEOUT", "MADV_COLD")
    for _ in range(rng.randint(3, 12)):
        r = rng.random()
        if r < 0.55:
            name, start, pages = area.piece()
            area.madvise(name, start, pages, rng.choice(advice))
        elif r < 0.75:
            name, page = area.pick()
            area.write(name, page)
        elif r < 0.9:
            name, page = area.pick()
            area.read(name, page)
        else:
            name, start, pages = area.piece()
            area.mprotect(name, start, min(pages, 4), "PROT_READ")


def _populate(b: Builder) -> None:
    """MAP_POPULATE and MADV_POPULATE_READ/WRITE: read-populating private
    memory maps zero pages, write-populating allocates (THPs where allowed);
    holes and forbidden access fail."""
    rng = b.rng
    area = ThpArea(b)
    for slot in rng.sample(range(0, ThpArea.SLOTS - 1), rng.randint(1, 3)):
        n = rng.choice((8, 16, HUGE, HUGE + 8))
        flags = SHARED if rng.random() < 0.2 else PRIVATE
        prot = rng.choice((RW, RW, "PROT_READ", "PROT_NONE"))
        populate = rng.random() < 0.4
        name = b.fresh("h")
        b.emit(
            f"char *{name} = mmap(t + {slot * HUGE} * page_size, {n} * page_size, {prot},"
            f" {flags} | MAP_FIXED{' | MAP_POPULATE' if populate else ''}, -1, 0);"
        )
        if n >= HUGE and rng.random() < 0.7:
            b.emit(f"madvise({name}, {n} * page_size, MADV_HUGEPAGE);")
        area.regions.append((name, slot * HUGE, n))
    for _ in range(rng.randint(3, 10)):
        r = rng.random()
        name, start, pages = area.piece()
        if r < 0.6:
            area.madvise(
                name, start, pages, rng.choice(("MADV_POPULATE_READ", "MADV_POPULATE_WRITE"))
            )
        elif r < 0.7:
            # Across the end of a region: part of the range is a hole.
            area.madvise(name, start, pages + HUGE, "MADV_POPULATE_READ")
        elif r < 0.8:
            name, page = area.pick()
            area.write(name, page)
        elif r < 0.9:
            area.madvise(name, start, pages, "MADV_DONTNEED")
        else:
            b.fork()


def _page_tables(b: Builder) -> None:
    """When a PTE table exists, empty or not, and so whether a fault may
    map a THP (it needs the PMD none): tables left by a partial
    MADV_DONTNEED and freed by a whole-table one (CONFIG_PT_RECLAIM), kept
    by munmap for a neighbouring VMA in the same 2 MiB, moved whole or
    entry by entry by mremap (which allocates a destination table even for
    a range with no pages, and leaves the source's with MREMAP_DONTUNMAP),
    copied by fork, left by MADV_PAGEOUT of a lazyfree THP; then THP-able
    faults at the source and the destination. VmPTE is compared after
    every statement."""
    rng = b.rng
    area = ThpArea(b)
    for slot in rng.sample(range(0, ThpArea.SLOTS - 1), rng.randint(1, 3)):
        n = rng.choice((HUGE, 2 * HUGE, HUGE + 32, 8, HUGE - 16))
        area.region(slot, n, hugepage=rng.random() < 0.5)
    forked: list[str] = []
    for _ in range(rng.randint(4, 14)):
        who = rng.choice(["main", *forked])
        r = rng.random()
        if r < 0.2:
            name, page = area.pick()
            area.write(name, page, who)
        elif r < 0.25:
            name, page = area.pick()
            area.read(name, page, who)
        elif r < 0.35:
            name, start, pages = area.piece()
            area.madvise(name, start, pages, "MADV_HUGEPAGE", who)
        elif r < 0.5:
            name, start, pages = area.piece()
            area.madvise(name, start, pages, "MADV_DONTNEED", who)
        elif r < 0.6:
            name, start, pages = area.piece()
            area.munmap(name, start, min(pages, rng.choice((1, 8, HUGE))), who)
        elif r < 0.8:
            _page_tables_mremap(b, area, who)
        elif r < 0.87 and len(forked) < 2:
            forked.append(b.fork(who))
        elif r < 0.94:
            name, start, pages = area.piece()
            area.madvise(name, start, pages, "MADV_FREE", who)
            area.madvise(name, start, pages, "MADV_PAGEOUT", who)
        else:
            name, start, pages = area.piece()
            area.memset(name, start, min(pages, 64), who)


def _page_tables_mremap(b: Builder, area: ThpArea, who: str) -> None:
    """An mremap of part of a region (with pages or none) to a PMD boundary
    of the area or near one, moved or grown, maybe MREMAP_DONTUNMAP, then a
    fault at the destination's and maybe the source's first page."""
    rng = b.rng
    name, start, pages = area.piece()
    pages = min(pages, rng.choice((1, 16, HUGE)))
    new_pages = pages if rng.random() < 0.6 else rng.choice((HUGE, 2 * HUGE))
    room = ThpArea.SLOTS * HUGE - new_pages
    dest = max(0, min(room, rng.choice((0, 1, 2, 3, 4, 5, 6)) * HUGE + rng.choice((0, 0, 16))))
    flags = "MREMAP_MAYMOVE | MREMAP_FIXED"
    if new_pages == pages and rng.random() < 0.3:
        flags += " | MREMAP_DONTUNMAP"
    moved = b.fresh("r")
    b.emit(
        f"char *{moved} = mremap({name} + {start} * page_size, {pages} * page_size,"
        f" {new_pages} * page_size, {flags}, t + {dest} * page_size);",
        who,
    )
    b.emit(f"t[{dest} * page_size] = 'd';", who)
    if new_pages > HUGE:
        b.emit(f"t[{dest + HUGE} * page_size] = 'd';", who)
    if rng.random() < 0.5:
        area.write(name, start, who)


def _shared_anon(b: Builder) -> None:
    """MAP_SHARED anonymous memory (shmem): reads fault in the page cache's
    pages (and map their cached neighbours: fault-around), writes allocate,
    fork shares the same folios, DONTNEED/PAGEOUT/REMOVE unmap them."""
    rng = b.rng
    n = rng.choice((8, 16, 32, 40))
    base = rng.randint(0, USABLE - n)
    b.mmap(base, n, RW, f"{SHARED} | MAP_FIXED")
    if rng.random() < 0.4:
        b.memset(base, rng.randint(1, n))
    children: list[str] = []
    ops = (
        "store",
        "store",
        "load",
        "load",
        "load",
        "fork",
        "dontneed",
        "pageout",
        "munmap",
        "remove",
        "mremap",
        "mprotect",
        "private",
    )
    for _ in range(rng.randint(4, 14)):
        who = rng.choice(["main", *children])
        op = rng.choice(ops)
        page = base + rng.randrange(n)
        if op == "store":
            b.store(page, who)
        elif op == "load":
            b.load(page, who)
        elif op == "fork" and len(children) < 3:
            children.append(b.fork(who))
        elif op in ("dontneed", "pageout", "remove"):
            k = rng.randint(1, 8)
            advice = {
                "dontneed": "MADV_DONTNEED",
                "pageout": "MADV_PAGEOUT",
                "remove": "MADV_REMOVE",
            }
            b.madvise(page, min(k, base + n - page), advice[op], who)
        elif op == "munmap":
            b.munmap(page, rng.randint(1, 3), who)
        elif op == "mremap":
            target = rng.randrange(USABLE - 4)
            b.mremap(page, 2, 2, "MREMAP_MAYMOVE | MREMAP_FIXED", target, who)
        elif op == "mprotect":
            b.mprotect(page, rng.randint(1, 4), rng.choice(("PROT_READ", RW)), who)
        else:
            b.mmap(rng.randrange(USABLE - 4), rng.randint(1, 4), RW, process=who)


# mixed: pages of `t` it may touch; the last RESERVE stay PROT_NONE, so
# nothing grows into what lies above the area.
MIXED_PAGES = ThpArea.SLOTS * HUGE - RESERVE
MIXED_ADVICE = (  # MADV_HUGEPAGE twice: THPs need it here (THP "madvise" mode)
    *ADVICE,
    "MADV_HUGEPAGE",
    "MADV_POPULATE_READ",
    "MADV_POPULATE_WRITE",
    "MADV_REMOVE",
)
MIXED_LENGTHS = (1, 2, 3, 16, 64, HUGE - 1, HUGE, HUGE + 1, 2 * HUGE)


def _mixed(b: Builder) -> None:
    """Random interleavings of every mainline call the other families make,
    in a 2 MiB-aligned area so THPs happen: mmap (private or shared,
    FIXED or FIXED_NOREPLACE, POPULATE, NORESERVE), munmap, mprotect, every
    advice, mremap in place, moved, resized and DONTUNMAP, stores, loads,
    memset and fork, by any process. The interactions between areas are
    what the one-area families do not reach."""
    rng = b.rng
    ThpArea(b)
    b.base = "t"

    def span(near: float = 0.65) -> tuple[int, int]:
        """A start and a length: at or near a mapping made earlier (its
        start, middle or PMD end) or anywhere, often on a PMD boundary."""
        if b.regions and rng.random() < near:
            start, n = rng.choice(b.regions)
            start += rng.choice((0, 0, 0, 1, -1, 16, n // 2, HUGE - 8 - start % HUGE))
            n = rng.choice((n, n, n - 1, n + 1, *MIXED_LENGTHS))
        else:
            start = rng.randrange(ThpArea.SLOTS) * HUGE + rng.choice(
                (0, 0, 0, 1, 16, HUGE - 16, rng.randrange(HUGE))
            )
            n = rng.choice(MIXED_LENGTHS)
        start = min(max(start, 0), MIXED_PAGES - 1)
        return start, max(1, min(n, MIXED_PAGES - start))

    def mapping(process: str) -> None:
        start, n = span()
        fixed = rng.choice(("MAP_FIXED", "MAP_FIXED", "MAP_FIXED", "MAP_FIXED_NOREPLACE"))
        b.mmap(start, n, b.prot(), b.mflags(fixed), process=process)
        if n >= HUGE and rng.random() < 0.6:
            b.madvise(start, n, "MADV_HUGEPAGE", process)

    def touch(process: str) -> None:
        start, n = span(0.9)
        r = rng.random()
        if r < 0.45:
            b.store(start + rng.randrange(n), process)
        elif r < 0.65:
            b.load(start + rng.randrange(n), process)
        else:
            b.memset(start, min(n, rng.choice((1, 4, 64, HUGE))), process)

    def unmap(process: str) -> None:
        b.munmap(*span(), process)

    def protect(process: str) -> None:
        b.mprotect(*span(), b.prot(), process)

    def advise(process: str) -> None:
        b.madvise(*span(), rng.choice(MIXED_ADVICE), process)

    def remap(process: str) -> None:
        start, old = span()
        r = rng.random()
        if r < 0.35:  # grow or shrink where it is, or anywhere
            new = max(
                1,
                min(rng.choice((old // 2, old + 1, old + 16, *MIXED_LENGTHS)), MIXED_PAGES - start),
            )
            b.mremap(start, old, new, rng.choice(("0", "MREMAP_MAYMOVE")), process=process)
            b.regions.append((start, new))
            return
        new = old if r < 0.8 else rng.choice(MIXED_LENGTHS)
        target, _ = span()
        target = min(target, MIXED_PAGES - new)
        flags = "MREMAP_MAYMOVE | MREMAP_FIXED"
        if old == new and rng.random() < 0.3:
            flags += " | MREMAP_DONTUNMAP"
        b.mremap(start, old, new, flags, target, process)
        b.regions.append((target, new))

    def fork(process: str) -> None:
        if len(b.processes) < 4:
            b.fork(process)
        else:
            touch(process)

    for slot in rng.sample(range(ThpArea.SLOTS), rng.randint(1, 3)):
        n = min(rng.choice((HUGE, 2 * HUGE, HUGE + 16, 64)), MIXED_PAGES - slot * HUGE)
        b.mmap(slot * HUGE, n, RW, b.mflags())
        if rng.random() < 0.8:
            b.madvise(slot * HUGE, n, "MADV_HUGEPAGE")
        if rng.random() < 0.5:
            touch("main")
    b.random_ops(
        {touch: 8, mapping: 2, unmap: 2, protect: 2, advise: 4, remap: 3, fork: 1},
        MAX_STATEMENTS,
    )


_FAMILY_FUNCS: dict[str, Callable[[Builder], None]] = {
    "mmap_fault": _mmap_fault,
    "mprotect": _mprotect,
    "munmap": _munmap,
    "madvise": _madvise,
    "mremap_inplace": _mremap_inplace,
    "mremap_move": _mremap_move,
    "multi_vma": _multi_vma,
    "fork": _fork,
    "placement": _placement,
    "thp": _thp,
    "thp_fault": _thp_fault,
    "huge_zero": _huge_zero,
    "cow": _cow,
    "thp_reuse": _thp_reuse,
    "thp_partial": _thp_partial,
    "reclaim": _reclaim,
    "populate": _populate,
    "page_tables": _page_tables,
    "shared_anon": _shared_anon,
    "mixed": _mixed,
}


def generate(seed: int, family: str) -> str:
    """The scenario source for (seed, family): the same text every time."""
    if family not in _FAMILY_FUNCS:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    rng = random.Random(f"{family}:{seed}")
    b = Builder(rng, carveout=family not in NO_CARVEOUT)
    b.lines.insert(0, f"// {family} #{seed} (tests/support/scenario_gen.py)")
    _FAMILY_FUNCS[family](b)
    return b.text()


def cases() -> list[tuple[str, int]]:
    """Every (family, seed) the differential test runs."""
    return [(family, seed) for family in FAMILIES for seed in range(SEEDS[family])]
