"""tools/testing/selftests/mm/merge.c, the anonymous cases, as scenarios.

Each test is the selftest's body in the scenario language
(tests/support/merge_c.py). The selftest checks VMA extents with
PROCMAP_QUERY; here `extent()` reads them from the final /proc/PID/maps of
the process that ran the test.

Every case runs twice: on the simulated 6.18 kernel and on this host's
kernel (6.18.8 or later, so the merge_with_fork cases expect the fixed,
no-merge-after-fork behaviour). The host kernel is the truth: where the
engine and the table of mm_model.md §6.2 disagree, the host decides.

Pictures: one column per page of the carve-out; upper case faulted, lower
case unfaulted; `|` a VMA boundary where letters alone would hide it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.mm_constants import PAGE_SIZE
from tests.support.merge_c import (
    CORRECT_PLACED_CHECKS,
    MREMAP_UNFAULTED,
    MergeCase,
    correct_placed_checkpoints,
    scenario,
)
from tests.support.outcome import Outcome, on_engine, on_kernel

P = PAGE_SIZE


@pytest.fixture(params=["engine", "kernel"])
def run(request: pytest.FixtureRequest) -> Callable[[str], Outcome]:
    """Run a scenario on the simulated kernel or on the host's."""
    return on_engine if request.param == "engine" else on_kernel


def pages(o: Outcome, start: str | int, n: int) -> tuple[int, int]:
    base = o[start] if isinstance(start, str) else start
    return base, base + n * P


# --- mprotect: an RW VMA between RO ones made RO merges all ---------------

MPROTECT: dict[str, MergeCase] = {
    # 0123456789A
    #  rrrrrWwwww     RO | RW faulted at ptr[5]
    #  RRRRRRRRRR     after mprotect of the RW half: one 10-page RO VMA
    "unfaulted_left": MergeCase(
        """
        char *ptr = mmap(&carveout[page_size], 10 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(ptr, 5 * page_size, PROT_READ);
        ptr[5 * page_size] = 'x';
        mprotect(&ptr[5 * page_size], 5 * page_size, PROT_READ);
        """,
        (("ptr", 10),),
    ),
    # 0123456789A
    #  Wwwwwrrrrr     RW faulted at ptr[0] | RO
    #  RRRRRRRRRR     one 10-page RO VMA
    "unfaulted_right": MergeCase(
        """
        char *ptr = mmap(&carveout[page_size], 10 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(&ptr[5 * page_size], 5 * page_size, PROT_READ);
        ptr[0] = 'x';
        mprotect(ptr, 5 * page_size, PROT_READ);
        """,
        (("ptr", 10),),
    ),
    # 0123456789A
    #   rrrWwwrrr     RO | RW faulted | RO
    #   RRRRRRRRR     one 9-page RO VMA: a three-way merge
    "unfaulted_both": MergeCase(
        """
        char *ptr = mmap(&carveout[2 * page_size], 9 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(ptr, 3 * page_size, PROT_READ);
        mprotect(&ptr[6 * page_size], 3 * page_size, PROT_READ);
        ptr[3 * page_size] = 'x';
        mprotect(&ptr[3 * page_size], 3 * page_size, PROT_READ);
        """,
        (("ptr", 9),),
    ),
    # 0123456789A
    #   RRR|WWW|rrr   faulted RO | faulted RW | unfaulted RO
    #   RRRRRRRRR     one 9-page RO VMA
    "faulted_left_unfaulted_right": MergeCase(
        """
        char *ptr = mmap(&carveout[2 * page_size], 9 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(&ptr[6 * page_size], 3 * page_size, PROT_READ);
        ptr[0] = 'x';
        mprotect(ptr, 3 * page_size, PROT_READ);
        mprotect(&ptr[3 * page_size], 3 * page_size, PROT_READ);
        """,
        (("ptr", 9),),
    ),
    # 0123456789A
    #   rrr|WWW|RRR   unfaulted RO | faulted RW | faulted RO
    #   RRRRRRRRR     one 9-page RO VMA
    "unfaulted_left_faulted_right": MergeCase(
        """
        char *ptr = mmap(&carveout[2 * page_size], 9 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(ptr, 3 * page_size, PROT_READ);
        ptr[3 * page_size] = 'x';
        mprotect(&ptr[6 * page_size], 3 * page_size, PROT_READ);
        mprotect(&ptr[3 * page_size], 3 * page_size, PROT_READ);
        """,
        (("ptr", 9),),
    ),
}


def assert_extents(o: Outcome, case: MergeCase) -> None:
    """The run succeeded, and each VMA the selftest checks spans what it expects."""
    assert o.failed() == []
    for var, n in case.extents:
        assert o.extent(o[var]) == pages(o, var, n), var


@pytest.mark.parametrize("name", list(MPROTECT))
def test_mprotect(run: Callable[[str], Outcome], name: str) -> None:
    assert_extents(run(MPROTECT[name].source()), MPROTECT[name])


# --- fork -------------------------------------------------------------------


def test_forked_target_vma(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #  AAAAA          faulted, then fork; the child unCOWs all five pages
    #  AAAAAbbbbb     child maps B after A: no merge, A was forked
    o = run(
        scenario(
            """
        char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr[0] = 'x';
        FORK;
        memset(ptr, 'x', 5 * page_size);
        char *ptr2 = mmap(&ptr[5 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        """,
            forked=True,
        )
    )
    assert o.failed() == []
    assert o.extent(o["ptr"], "child") == pages(o, "ptr", 5)
    assert o.extent(o["ptr2"], "child") == pages(o, "ptr2", 5)


def test_forked_source_vma(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #  AAAAAbbbbb     child: A forked RW, B unfaulted RWX: no merge
    #  AAAAA|bbbbb    A mprotected to RWX: still no merge, A was forked
    o = run(
        scenario(
            """
        char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        ptr[0] = 'x';
        FORK;
        memset(ptr, 'x', 5 * page_size);
        char *ptr2 = mmap(&carveout[6 * page_size], 5 * page_size,
                          PROT_READ | PROT_WRITE | PROT_EXEC,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(ptr, 5 * page_size, PROT_READ | PROT_WRITE | PROT_EXEC);
        """,
            forked=True,
        )
    )
    assert o.failed() == []
    assert o.extent(o["ptr2"], "child") == pages(o, "ptr2", 5)
    assert o.extent(o["ptr"], "child") == pages(o, "ptr", 5)


# --- mremap of unfaulted and faulted VMAs -----------------------------------


@pytest.mark.parametrize("name", list(MREMAP_UNFAULTED))
def test_mremap_unfaulted(run: Callable[[str], Outcome], name: str) -> None:
    assert_extents(run(MREMAP_UNFAULTED[name].source()), MREMAP_UNFAULTED[name])


@pytest.mark.parametrize("checkpoint", range(len(CORRECT_PLACED_CHECKS)))
def test_mremap_correct_placed_faulted(run: Callable[[str], Outcome], checkpoint: int) -> None:
    # the pictures: tests/support/merge_c.py, at CORRECT_PLACED_CHECKS
    o = run(correct_placed_checkpoints()[checkpoint])
    assert o.failed() == []
    first, n = CORRECT_PLACED_CHECKS[checkpoint]
    start = o["carveout"] + first * P
    assert o.extent(start) == pages(o, start, n)


# --- merge_with_fork: a faulted VMA moved back next to unfaulted ones -------
# Each runs unforked and forked; forked, the child (where the selftest goes
# on) does the moves. Since 6.18.8 (CVE-2026-23077) a forked VMA does not
# merge with an unfaulted neighbour.


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
def test_mremap_faulted_to_unfaulted_prev(run: Callable[[str], Outcome], forked: bool) -> None:
    # 0123456789ABCDEFGHIJKLMNOP
    #     AAA                      A faulted at C+4 (fork here, if forked)
    #  bbb                AAA      A moved to C+20, B mapped at C+1
    #  bbbAAA                      A back, DONTUNMAP
    #  BBBBBB   unforked; bbb|AAA  forked
    o = run(
        scenario(
            """
        char *ptr_a = mmap(&carveout[page_size + 3 * page_size], 3 * page_size,
                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        ptr_a[0] = 'x';
        FORK;
        ptr_a = mremap(ptr_a, 3 * page_size, 3 * page_size,
                       MREMAP_FIXED | MREMAP_MAYMOVE, &carveout[20 * page_size]);
        char *ptr_b = mmap(&carveout[page_size], 3 * page_size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        ptr_a = mremap(ptr_a, 3 * page_size, 3 * page_size,
                       MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
                       &carveout[page_size + 3 * page_size]);
        """,
            forked,
        )
    )
    proc = "child" if forked else "main"
    assert o.failed() == []
    assert o.extent(o["ptr_b"], proc) == pages(o, "ptr_b", 3 if forked else 6)


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
def test_mremap_faulted_to_unfaulted_next(run: Callable[[str], Outcome], forked: bool) -> None:
    # 0123456789ABCDEFGHIJKLMNOP
    #  AAA                         A faulted at C+1
    #     bbb             AAA      A moved to C+20, B mapped at C+4
    #  AAAbbb                      A back, DONTUNMAP
    #  AAAAAA   unforked; AAA|bbb  forked
    o = run(
        scenario(
            """
        char *ptr_a = mmap(&carveout[page_size], 3 * page_size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        ptr_a[0] = 'x';
        FORK;
        ptr_a = mremap(ptr_a, 3 * page_size, 3 * page_size,
                       MREMAP_FIXED | MREMAP_MAYMOVE, &carveout[20 * page_size]);
        char *ptr_b = mmap(&carveout[page_size + 3 * page_size], 3 * page_size,
                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        ptr_a = mremap(ptr_a, 3 * page_size, 3 * page_size,
                       MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP, &carveout[page_size]);
        """,
            forked,
        )
    )
    proc = "child" if forked else "main"
    assert o.failed() == []
    assert o.extent(o["ptr_a"], proc) == pages(o, "ptr_a", 3 if forked else 6)


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
def test_mremap_faulted_to_unfaulted_prev_unfaulted_next(
    run: Callable[[str], Outcome], forked: bool
) -> None:
    # 0123456789ABCDEFGHIJKLMNOP
    #     BBB                      B faulted at C+4
    #  aaa   ccc          BBB      B moved to C+20; A at C+1, C at C+7
    #  aaaBBBccc                   B back, DONTUNMAP
    #  AAAAAAAAA  unforked;  aaa|BBB|ccc  forked
    o = run(
        scenario(
            """
        char *ptr_b = mmap(&carveout[page_size + 3 * page_size], 3 * page_size,
                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        ptr_b[0] = 'x';
        FORK;
        ptr_b = mremap(ptr_b, 3 * page_size, 3 * page_size,
                       MREMAP_FIXED | MREMAP_MAYMOVE, &carveout[20 * page_size]);
        char *ptr_a = mmap(&carveout[page_size], 3 * page_size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        char *ptr_c = mmap(&carveout[page_size + 3 * page_size + 3 * page_size], 3 * page_size,
                           PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        ptr_b = mremap(ptr_b, 3 * page_size, 3 * page_size,
                       MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
                       &carveout[page_size + 3 * page_size]);
        """,
            forked,
        )
    )
    proc = "child" if forked else "main"
    assert o.failed() == []
    assert o.extent(o["ptr_a"], proc) == pages(o, "ptr_a", 3 if forked else 9)
    if forked:
        assert o.extent(o["ptr_b"], proc) == pages(o, "ptr_b", 3)


@pytest.mark.parametrize("forked", [False, True], ids=["unforked", "forked"])
def test_mremap_faulted_to_unfaulted_prev_faulted_next(
    run: Callable[[str], Outcome], forked: bool
) -> None:
    # 0123456789ABCDEFGHIJKLMNOP
    #     BBBCCC                   B and C one faulted 6-page VMA at C+4
    #  aaa   CCC          BBB      B moved to C+20; A mapped at C+1
    #  aaaBBBCCC                   B back, DONTUNMAP
    #  AAAAAAAAA  unforked;  aaa|BBBBBB  forked (B and C share the anon_vma)
    o = run(
        scenario(
            """
        char *ptr_bc = mmap(&carveout[page_size + 3 * page_size], 3 * page_size + 3 * page_size,
                            PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                            -1, 0);
        ptr_bc[0] = 'x';
        FORK;
        char *ptr_b = mremap(ptr_bc, 3 * page_size, 3 * page_size,
                             MREMAP_FIXED | MREMAP_MAYMOVE, &carveout[20 * page_size]);
        char *ptr_a = mmap(&carveout[page_size], 3 * page_size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        ptr_b = mremap(ptr_b, 3 * page_size, 3 * page_size,
                       MREMAP_FIXED | MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
                       &carveout[page_size + 3 * page_size]);
        """,
            forked,
        )
    )
    proc = "child" if forked else "main"
    assert o.failed() == []
    if forked:
        assert o.extent(o["ptr_b"], proc) == pages(o, "ptr_b", 6)
        assert o.extent(o["ptr_a"], proc) == pages(o, "ptr_a", 3)
    else:
        assert o.extent(o["ptr_a"], proc) == pages(o, "ptr_a", 9)
