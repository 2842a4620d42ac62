"""Page-table lifetime: when a PTE, PMD or PUD table exists, empty or not,
what that does to a later THP fault, and VmPTE compared with the kernel.

Each engine case is one the kernel was seen to do on 6.18 (small C
programs reading VmPTE and AnonHugePages, then the same scenarios through
`verify`); the last tests run them on this host's kernel.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from engine.madvise import do_madvise
from engine.memory import handle_mm_fault
from engine.mm_types import EXEC_PAGE_TABLES
from engine.mmap import do_mmap
from engine.pagetable import PRESENT, Pte, TablePages
from engine.present.picture import render_state
from engine.present.report import run_json
from engine.sim.backend import ProcessTables
from engine.sim.kernel import Kernel
from engine.sim.profile import DEFAULT
from engine.sim.simulation import run_source
from engine.uapi import MADV, MAP, PROT
from engine.verify.compare import compare
from tests.support.host import assert_kernel_agrees

AREA = """\
char *c = mmap(NULL, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *x = mmap(c + (4 << 20), 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
"""

DONTNEED = (
    AREA
    + """\
x[0] = 1;
madvise(x, page_size, MADV_DONTNEED);
madvise(x, 4 << 20, MADV_HUGEPAGE);
x[page_size] = 1;
madvise(x, 2 << 20, MADV_DONTNEED);
x[0] = 1;
char v = x[2 << 20];
madvise(x, 4 << 20, MADV_DONTNEED);
"""
)

MUNMAP = (
    AREA
    + """\
x[0] = 1;
x[2 << 20] = 1;
munmap(x, page_size);
munmap(x + page_size, (2 << 20) - page_size);
munmap(x + (2 << 20), 2 << 20);
"""
)

# A source table with a page outside the moved range: the destination gets
# a table with nothing in it, and the fault there cannot map a THP.
MREMAP_EMPTY = """\
char *c = mmap(NULL, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *x = mmap(c + (4 << 20), 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(x, 2 * page_size, MADV_HUGEPAGE);
x[page_size] = 1;
char *y = mremap(x, page_size, 4 << 20, MREMAP_MAYMOVE);
y[0] = 1;
y[2 << 20] = 1;
"""

DONTUNMAP = """\
char *c = mmap(NULL, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *z = mmap(c + (8 << 20), 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
memset(z, 1, 4 << 20);
char *w = mremap(z, 4 << 20, 4 << 20, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
madvise(z, 4 << 20, MADV_HUGEPAGE);
z[0] = 1;
char *u = mmap(c + (2 << 20) - 8 * page_size, (2 << 20) + 8 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
u[0] = 1;
u[8 * page_size] = 1;
char *q = mremap(u, (2 << 20) + 8 * page_size, (2 << 20) + 8 * page_size, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);
"""

UPPER_LEVELS = """\
char *x = mmap((char *)0x200000000, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
x[0] = 1;
char *z = mmap((char *)0x200400000, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
munmap(x, 4 * page_size);
munmap(z, page_size);
char *t = mmap((char *)0x10000000000, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
t[0] = 1;
munmap(t, page_size);
"""

# A whole, 1 GiB aligned extent: its PMD table moves as one
# (move_normal_pud), so MREMAP_DONTUNMAP leaves the source none.
PUD_MOVE = """\
char *x = mmap((char *)0x200000000, 1 << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
x[0] = 1;
x[(1 << 30) - page_size] = 1;
char *y = mremap(x, 1 << 30, 1 << 30, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, (char *)0x400000000);
y[0] = 2;
"""

FORK = (
    AREA
    + """\
x[0] = 1;
madvise(x, page_size, MADV_DONTNEED);
madvise(x + (2 << 20), 2 << 20, MADV_HUGEPAGE);
x[2 << 20] = 1;
pid_t child = fork();
"""
)

PAGEOUT = (
    AREA
    + """\
madvise(x, 2 << 20, MADV_HUGEPAGE);
memset(x, 1, 2 << 20);
madvise(x, 2 << 20, MADV_FREE);
madvise(x, 2 << 20, MADV_PAGEOUT);
x[0] = 1;
"""
)


def tables(source: str) -> list[dict[str, dict[str, int]]]:
    """Each statement's page tables by process and level (run --json --pages)."""
    steps = run_json(run_source(source), pages=True)["steps"]
    assert isinstance(steps, list)
    return [step["page_tables"] for step in steps]


EXEC = EXEC_PAGE_TABLES.tables()


def pte(source: str) -> list[int]:
    """The main process's PTE tables (with deposited ones) after each
    statement, beyond those of its stack and vDSO."""
    return [step["main"]["pte"] - len(EXEC.pte) for step in tables(source)]


def huge_pages(source: str) -> list[int]:
    """PMD-mapped pages of main after each statement."""
    document = run_json(run_source(source), pages=True)
    steps = document["steps"]
    assert isinstance(steps, list)
    return [
        sum(r["pages"] for r in step["pages"].get("main", []) if r["pmd_mapped"]) for step in steps
    ]


def test_partial_dontneed_keeps_an_empty_table_that_stops_a_thp_whole_frees_it() -> None:
    # x[0]; DONTNEED one page: the table stays, empty; the THP-able fault
    # after MADV_HUGEPAGE maps a small page into it. DONTNEED of the whole
    # 2 MiB frees the table (PT_RECLAIM): the next fault maps a THP, with a
    # deposited table, the read beyond it the huge zero page with another.
    assert pte(DONTNEED)[2:] == [1, 1, 1, 1, 0, 1, 2, 0]
    assert huge_pages(DONTNEED)[5:] == [0, 0, 512, 1024, 0]


def test_the_picture_and_the_fault_say_an_empty_table_is_in_the_way() -> None:
    run = run_source(DONTNEED)
    after_partial = run.statement_states(3)[1]
    after_whole = run.statement_states(6)[1]
    line = "empty PTE tables of main: 7ffff7200000"
    assert line in render_state(after_partial)
    assert line not in render_state(after_whole)
    fault = run.statement_steps(5)
    why = [e.decision for step in fault for e in step.events]
    assert any("has a PTE table (empty): not pmd_none, so no THP" in w for w in why)


def test_without_pt_reclaim_dontneed_frees_no_table() -> None:
    for reclaim, left in ((True, 0), (False, 1)):
        k = Kernel(profile=replace(DEFAULT, pt_reclaim=reclaim))
        rw, private = (
            PROT["PROT_READ"] | PROT["PROT_WRITE"],
            MAP["MAP_PRIVATE"] | MAP["MAP_ANONYMOUS"],
        )
        addr = do_mmap(k, "main", 0, 4 << 20, rw, private, -1, 0)
        addr = (addr + (2 << 20) - 1) & ~((2 << 20) - 1)
        handle_mm_fault(k, "main", addr, write=True)
        do_madvise(k, "main", addr, 2 << 20, MADV["MADV_DONTNEED"])
        assert len(k.pagetable("main").tables().pte - EXEC.pte) == left


def test_munmap_keeps_a_table_a_neighbour_shares_and_frees_it_with_the_neighbour() -> None:
    assert pte(MUNMAP)[2:] == [1, 2, 2, 1, 0]


def test_mremap_gives_the_destination_a_table_for_a_range_with_no_pages() -> None:
    assert pte(MREMAP_EMPTY)[3:] == [1, 2, 2, 3]
    assert huge_pages(MREMAP_EMPTY)[5:] == [0, 512]


def test_dontunmap_moves_whole_tables_and_leaves_the_unaligned_source_its_table() -> None:
    counts = pte(DONTUNMAP)
    # 4 MiB aligned: both tables move whole, the source's PMDs are none and
    # a fault there maps a THP. The unaligned move leaves the source its
    # first table (shared with the PROT_NONE area below) and moves the
    # second whole to the realigned destination.
    assert counts[2:6] == [2, 2, 2, 3]
    assert counts[7:] == [4, 5, 6]
    assert huge_pages(DONTUNMAP)[5] == 512


def test_pmd_and_pud_tables_go_when_no_vma_is_left_in_their_range() -> None:
    # (The PUD table of the first 512 GiB is the program image's on the
    # kernel, which the engine does not model: verify counts it once.)
    levels = [
        (
            s["main"]["pte"] - len(EXEC.pte),
            s["main"]["pmd"] - len(EXEC.pmd),
            s["main"]["pud"] - len(EXEC.pud),
        )
        for s in tables(UPPER_LEVELS)
    ]
    assert levels == [
        (0, 0, 0),
        (1, 1, 1),
        (1, 1, 1),
        (0, 1, 1),  # z keeps the PMD table of that GiB
        (0, 0, 0),
        (0, 0, 0),
        (1, 1, 1),  # 1 TiB
        (0, 0, 0),
    ]


def test_a_whole_aligned_gib_moves_its_pmd_table() -> None:
    levels = [(s["main"]["pte"], s["main"]["pmd"]) for s in tables(PUD_MOVE)]
    assert [(pte - len(EXEC.pte), pmd - len(EXEC.pmd)) for pte, pmd in levels] == [
        (0, 0),
        (1, 1),
        (2, 1),
        (2, 1),  # moved: no PMD table left at the source, one at the destination
        (2, 1),
    ]


def test_fork_copies_empty_tables_and_deposits_one_for_a_thp() -> None:
    (last,) = tables(FORK)[-1:]
    assert last["child"] == last["main"] == {"pte": 2 + len(EXEC.pte), "pmd": 1, "pud": 1}


def test_pageout_of_a_lazyfree_thp_leaves_its_table_so_the_refault_is_small() -> None:
    assert pte(PAGEOUT)[-1] == 1
    assert huge_pages(PAGEOUT)[-3:] == [512, 0, 0]


def test_reading_the_tables_mid_batch_keeps_the_open_editor_recording() -> None:
    """k.pagetable() applies the batch so far; the editor taken before it
    (k.pt()) goes on recording, and the step keeps both edits:

        page        0     1
        pt.set      P
        pagetable   P                 (the batch so far)
        pt.set      P     P
        step        P     P
    """
    k = Kernel()
    pt = k.pt("main")
    pt.set(0x1000, Pte(PRESENT, 7))
    assert k.pagetable("main").get(0x1000) == Pte(PRESENT, 7)
    pt.set(0x1001, Pte(PRESENT, 8))
    table = k.step("test", "two entries").state.processes["main"].pagetable
    assert [vpn for vpn, _ in table.items(0x1000, 0x1002)] == [0x1000, 0x1001]
    assert len(table) == 2


def test_page_tables_compare_with_the_executors_own_counted_once() -> None:
    own = TablePages(frozenset({1, 2}), frozenset({0}), frozenset({0}))
    mine = TablePages(frozenset({2, 3}), frozenset({0}), frozenset({0}))

    def step(found: ProcessTables) -> dict[str, Any]:
        return {
            "line": 1,
            "source": "x[0] = 1;",
            "result": "ok",
            "value": None,
            "maps": {"main": []},
            "page_tables": {"main": found},
        }

    sim = step(ProcessTables(mine.pages, mine))
    # Table 2 is the executor's too: 3 PTE + 1 PMD + 1 PUD in all.
    assert compare([sim], [step(ProcessTables(5, own=own))]) == []
    (found,) = compare([sim], [step(ProcessTables(6, own=own))])
    assert found.what == "page_tables:main"
    assert found.simulated is not None and found.simulated[0].startswith("5 page-table pages")


SCENARIOS = [DONTNEED, MUNMAP, MREMAP_EMPTY, DONTUNMAP, UPPER_LEVELS, PUD_MOVE, FORK, PAGEOUT]


@pytest.mark.parametrize("source", SCENARIOS, ids=lambda s: s.splitlines()[-1][:40])
def test_the_kernel_agrees_page_tables_and_all(source: str) -> None:
    assert_kernel_agrees(source)
