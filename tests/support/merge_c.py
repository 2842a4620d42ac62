"""tools/testing/selftests/mm/merge.c, the anonymous cases, as scenario text.

Each body is the selftest's, in the scenario language: a 30-page PROT_NONE
carve-out, VMAs mapped over it with MAP_FIXED, "fault" a write. `{flag}`
marks where the MREMAP_RELOCATE_ANON series' selftests (v1 patch 06) add
their flag to every mremap; `flagged()` fills it in, or leaves it out for
mainline.

Pictures: one column per page of the carve-out; upper case faulted, lower
case unfaulted; `|` a VMA boundary where letters alone would hide it.
"""

from __future__ import annotations

from dataclasses import dataclass

# The selftests move VMAs "far away" to carveout + 1000 (or 2000) pages. In
# the selftest binary that lands in free space; in the executor it could land
# on the executor's own mappings, so a PROT_NONE reservation above the
# carve-out (placed first, top-down) gives those moves somewhere to go.
PROLOGUE = """\
char *far = mmap(NULL, 4000 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
"""

FORK = "FORK;"


def scenario(body: str, forked: bool = False) -> str:
    """The prologue, then body; from the FORK line on, the child runs it (or no fork)."""
    lines: list[str] = []
    child = False
    starts = True  # the line begins a statement (the one before ended with ';')
    for line in body.strip().splitlines():
        line = line.strip()
        if line == FORK:
            if forked:
                lines.append("pid_t child = fork();")
                child = True
            continue
        lines.append(f"child: {line}" if child and starts and line else line)
        starts = line.endswith(";") or not line
    return PROLOGUE + "\n".join(lines) + "\n"


def flagged(body: str, flag: str = "") -> str:
    """body with `| flag` added to each mremap marked `{flag}` (none for mainline)."""
    return body.replace("{flag}", f" | {flag}" if flag else "")


@dataclass(frozen=True)
class MergeCase:
    """One selftest: its body, and the VMAs it checks as (variable, pages):
    the VMA at that variable's address starts there and spans that many pages."""

    body: str
    extents: tuple[tuple[str, int], ...]

    def source(self, flag: str = "") -> str:
        return scenario(flagged(self.body, flag))


UNFAULTED_BETWEEN = """
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[7 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
char *ptr3 = mmap(&carveout[14 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              ptr3 + page_size * 2000);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              ptr2 + page_size * 1000);
ptr[0] = 'x';
{fault3}
ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr[10 * page_size]);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr[5 * page_size]);
"""

UNFAULTED_BETWEEN_CORRECTLY_PLACED = """
char *ptr = mmap(&carveout[page_size], 15 * page_size, PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
ptr[0] = 'x';
munmap(&ptr[5 * page_size], 5 * page_size);
char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
{fault2}
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr[5 * page_size]);
"""

# An unfaulted VMA moved away and back next to others: mainline merges, and
# the series must merge with its flag too.
MREMAP_UNFAULTED: dict[str, MergeCase] = {
    # 0123456789A
    #  AAAAA          B unfaulted, moved 1000 pages away
    #  AAAAAbbbbb     B moved back after A: linear pgoff, merges
    #  AAAAAAAAAA
    "unfaulted_to_faulted": MergeCase(
        """
        char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        char *ptr2 = mmap(&carveout[7 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
                      ptr2 + page_size * 1000);
        ptr[0] = 'x';
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
                      &ptr[5 * page_size]);
        """,
        (("ptr", 10),),
    ),
    # 0123456789A
    #       AAAAA     A faulted at C+6; B unfaulted, moved away
    #  bbbbbAAAAA     B moved to C+1, before A: merges
    #  AAAAAAAAAA
    "unfaulted_behind_faulted": MergeCase(
        """
        char *ptr = mmap(&carveout[6 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        char *ptr2 = mmap(&carveout[14 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
                      ptr2 + page_size * 1000);
        ptr[0] = 'x';
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
                      &carveout[page_size]);
        """,
        (("ptr2", 10),),
    ),
    # 0123456789ABCDEF
    #  AAAAA     CCCCC    C faulted far away, moved back: pgoff not linear
    #  AAAAAbbbbbCCCCC    B unfaulted moved between
    #  AAAAAAAAAA|CCCCC   only A and B merge: C has its own anon_vma
    #                     (with the series' flag, C is relocated, and still apart)
    "unfaulted_between_faulted": MergeCase(
        UNFAULTED_BETWEEN.replace("{fault3}", "ptr3[0] = 'x';"), (("ptr", 10), ("ptr3", 5))
    ),
    # 0123456789ABCDEF
    #  AAAAA     ccccc    C unfaulted, moved away and back: pgoff re-based
    #  AAAAAbbbbbccccc    B unfaulted moved between
    #  AAAAAAAAAAAAAAA    one 15-page VMA
    "unfaulted_between_faulted_unfaulted": MergeCase(
        UNFAULTED_BETWEEN.replace("{fault3}", ""), (("ptr", 15),)
    ),
    # 0123456789ABCDEF
    #  AAAAAAAAAAAAAAA    15 pages faulted
    #  AAAAA     AAAAA    middle unmapped: same anon_vma, linear pgoffs
    #  AAAAAbbbbbAAAAA    unfaulted B moved into the hole
    #  AAAAAAAAAAAAAAA    a three-way merge
    "unfaulted_between_correctly_placed_faulted": MergeCase(
        UNFAULTED_BETWEEN_CORRECTLY_PLACED.replace("{fault2}", ""), (("ptr", 15),)
    ),
}

CORRECT_PLACED_FAULTED = """
char *ptr = mmap(&carveout[page_size], 15 * page_size, PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
ptr[0] = 'x';
char *ptr3 = &ptr[10 * page_size];
ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              ptr3 + page_size * 2000);
char *ptr2 = &ptr[5 * page_size];
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              ptr2 + page_size * 1000);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr[5 * page_size]);
{check}
ptr = mremap(ptr, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
             ptr + page_size * 1000);
ptr = mremap(ptr, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
             &carveout[page_size]);
{check}
ptr = mremap(ptr, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
             ptr + page_size * 1000);
ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr2[5 * page_size]);
{check}
ptr = mremap(ptr, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
             &carveout[page_size]);
{check}
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              ptr2 + page_size * 1000);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr[5 * page_size]);
{check}
ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              ptr3 + page_size * 1000);
ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr[10 * page_size]);
{check}
"""

# After each {check}: the VMA the selftest queries and its extent in pages,
# from the carve-out's page 1 (where ptr is whenever it is back home).
#
# 0123456789ABCDEF
#  AAAAAAAAAAAAAAA    15 pages faulted: pieces 1 (ptr), 2 (ptr2), 3 (ptr3)
#  AAAAAAAAAA         3 then 2 moved away, 2 back: merges     (check 0)
#       AAAAA         1 away and back: merges                 (check 1)
#       AAAAAAAAAA    1 away, 3 back after 2: merges           (check 2)
#  AAAAAAAAAAAAAAA    1 back: three-way merge                  (check 3)
#  AAAAAAAAAAAAAAA    2 away and back; then 3 away and back    (checks 4, 5)
CORRECT_PLACED_CHECKS = [(1, 10), (1, 10), (6, 10), (1, 15), (1, 15), (1, 15)]


def correct_placed_checkpoints(flag: str = "") -> list[str]:
    """The scenario cut at each {check}: every prefix ends where the selftest asserts."""
    parts = flagged(CORRECT_PLACED_FAULTED, flag).split("{check}")
    return [scenario("".join(parts[: i + 1])) for i in range(len(parts) - 1)]
