"""tools/testing/selftests/mm/merge.c, the anonymous cases, as scenarios.

Each test is the selftest's body in the scenario language: a 30-page
PROT_NONE carve-out, VMAs mapped over it with MAP_FIXED, "fault" a write.
The selftest checks VMA extents with PROCMAP_QUERY; here `extent()` reads
them from the final /proc/PID/maps of the process that ran the test.

Every case runs twice: on the simulated 6.18 kernel and on this host's
kernel (6.18.8 or later, so the merge_with_fork cases expect the fixed,
no-merge-after-fork behaviour). The host kernel is the truth: where the
engine and the table of mm_model.md §6.2 disagree, the host decides.

Pictures: one column per page of the carve-out; upper case faulted, lower
case unfaulted; `|` a VMA boundary where letters alone would hide it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from engine.mm_constants import PAGE_SIZE
from engine.scenario.interpret import StepOutcome
from engine.scenario.interpret import run as interpret_run
from engine.scenario.parse import parse
from engine.sim.simulation import Run, run_source
from engine.verify.real import RealMachine
from tests.conftest import real_kernel_unavailable

P = PAGE_SIZE
MAX_U64 = (1 << 64) - 1

# The selftests move VMAs "far away" to carveout + 1000 (or 2000) pages. In
# the selftest binary that lands in free space; in the executor it could land
# on the executor's own mappings, so a PROT_NONE reservation above the
# carve-out (placed first, top-down) gives those moves somewhere to go.
PROLOGUE = """\
char *far = mmap(NULL, 4000 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *carveout = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
"""

FORK = "FORK;"


@dataclass
class Outcome:
    """What a scenario left behind: variables, each statement's result, the maps."""

    values: dict[str, int]
    results: list[tuple[str, str]]
    maps: dict[str, list[str]]

    def __getitem__(self, name: str) -> int:
        return self.values[name]

    def failed(self) -> list[tuple[str, str]]:
        return [(src, res) for src, res in self.results if res != "ok"]

    def extent(self, addr: int, process: str = "main") -> tuple[int, int] | None:
        """The VMA of `process` covering addr, as (start, end) in bytes."""
        for line in self.maps[process]:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return lo, hi
        return None

    def vma_count(self, lo: int, hi: int, process: str = "main") -> int:
        """How many VMAs of `process` meet [lo, hi)."""
        n = 0
        for line in self.maps[process]:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            n += start < hi and lo < end
        return n


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


def _collect(outcomes: Iterator[StepOutcome], maps: Callable[[], dict[str, list[str]]]) -> Outcome:
    values: dict[str, int] = {}
    results: list[tuple[str, str]] = []
    for outcome in outcomes:
        st = outcome.statement
        if st.target is not None:
            v = outcome.result.value
            values[st.target] = (v & MAX_U64) if v is not None else 0
        results.append((st.source, outcome.result.result))
    return Outcome(values, results, maps())


def engine_outcome(run: Run) -> Outcome:
    """A finished simulated run, in the form a kernel run is collected in."""
    assert run.error is None, run.error
    return _collect((s.outcome for s in run.statements), lambda: run.statements[-1].maps)


def on_engine(source: str) -> Outcome:
    return engine_outcome(run_source(source))


def on_kernel(source: str) -> Outcome:
    reason = real_kernel_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with RealMachine() as machine:
        return _collect(interpret_run(parse(source), machine), machine.maps)


@pytest.fixture(params=["engine", "kernel"])
def run(request: pytest.FixtureRequest) -> Callable[[str], Outcome]:
    """Run a scenario on the simulated kernel or on the host's."""
    return on_engine if request.param == "engine" else on_kernel


def pages(o: Outcome, start: str | int, n: int) -> tuple[int, int]:
    base = o[start] if isinstance(start, str) else start
    return base, base + n * P


# --- mprotect ---------------------------------------------------------------


def test_mprotect_unfaulted_left(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #  rrrrrWwwww     RO | RW faulted at ptr[5]
    #  RRRRRRRRRR     after mprotect of the RW half: one 10-page RO VMA
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[page_size], 10 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(ptr, 5 * page_size, PROT_READ);
        ptr[5 * page_size] = 'x';
        mprotect(&ptr[5 * page_size], 5 * page_size, PROT_READ);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 10)


def test_mprotect_unfaulted_right(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #  Wwwwwrrrrr     RW faulted at ptr[0] | RO
    #  RRRRRRRRRR     one 10-page RO VMA
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[page_size], 10 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(&ptr[5 * page_size], 5 * page_size, PROT_READ);
        ptr[0] = 'x';
        mprotect(ptr, 5 * page_size, PROT_READ);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 10)


def test_mprotect_unfaulted_both(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #   rrrWwwrrr     RO | RW faulted | RO
    #   RRRRRRRRR     one 9-page RO VMA: a three-way merge
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[2 * page_size], 9 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(ptr, 3 * page_size, PROT_READ);
        mprotect(&ptr[6 * page_size], 3 * page_size, PROT_READ);
        ptr[3 * page_size] = 'x';
        mprotect(&ptr[3 * page_size], 3 * page_size, PROT_READ);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 9)


def test_mprotect_faulted_left_unfaulted_right(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #   RRR|WWW|rrr   faulted RO | faulted RW | unfaulted RO
    #   RRRRRRRRR     one 9-page RO VMA
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[2 * page_size], 9 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(&ptr[6 * page_size], 3 * page_size, PROT_READ);
        ptr[0] = 'x';
        mprotect(ptr, 3 * page_size, PROT_READ);
        mprotect(&ptr[3 * page_size], 3 * page_size, PROT_READ);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 9)


def test_mprotect_unfaulted_left_faulted_right(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #   rrr|WWW|RRR   unfaulted RO | faulted RW | faulted RO
    #   RRRRRRRRR     one 9-page RO VMA
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[2 * page_size], 9 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, -1, 0);
        mprotect(ptr, 3 * page_size, PROT_READ);
        ptr[3 * page_size] = 'x';
        mprotect(&ptr[6 * page_size], 3 * page_size, PROT_READ);
        mprotect(&ptr[3 * page_size], 3 * page_size, PROT_READ);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 9)


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


def test_mremap_unfaulted_to_faulted(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #  AAAAA          B unfaulted, moved 1000 pages away
    #  AAAAAbbbbb     B moved back after A: linear pgoff, merges
    #  AAAAAAAAAA
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        char *ptr2 = mmap(&carveout[7 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, ptr2 + page_size * 1000);
        ptr[0] = 'x';
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[5 * page_size]);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 10)


def test_mremap_unfaulted_behind_faulted(run: Callable[[str], Outcome]) -> None:
    # 0123456789A
    #       AAAAA     A faulted at C+6; B unfaulted, moved away
    #  bbbbbAAAAA     B moved to C+1, before A: merges
    #  AAAAAAAAAA
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[6 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        char *ptr2 = mmap(&carveout[14 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, ptr2 + page_size * 1000);
        ptr[0] = 'x';
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, &carveout[page_size]);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr2"]) == pages(o, "ptr2", 10)


def test_mremap_unfaulted_between_faulted(run: Callable[[str], Outcome]) -> None:
    # 0123456789ABCDEF
    #  AAAAA     CCCCC    C faulted far away, moved back: pgoff not linear
    #  AAAAAbbbbbCCCCC    B unfaulted moved between
    #  AAAAAAAAAA|CCCCC   only A and B merge
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        char *ptr2 = mmap(&carveout[7 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        char *ptr3 = mmap(&carveout[14 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, ptr3 + page_size * 2000);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, ptr2 + page_size * 1000);
        ptr[0] = 'x';
        ptr3[0] = 'x';
        ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[10 * page_size]);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[5 * page_size]);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 10)
    assert o.extent(o["ptr3"]) == pages(o, "ptr3", 5)


def test_mremap_unfaulted_between_faulted_unfaulted(run: Callable[[str], Outcome]) -> None:
    # 0123456789ABCDEF
    #  AAAAA     ccccc    C unfaulted, moved away and back: pgoff re-based
    #  AAAAAbbbbbccccc    B unfaulted moved between
    #  AAAAAAAAAAAAAAA    one 15-page VMA
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        char *ptr2 = mmap(&carveout[7 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        char *ptr3 = mmap(&carveout[14 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, ptr3 + page_size * 2000);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, ptr2 + page_size * 1000);
        ptr[0] = 'x';
        ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[10 * page_size]);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[5 * page_size]);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 15)


def test_mremap_unfaulted_between_correctly_placed_faulted(
    run: Callable[[str], Outcome],
) -> None:
    # 0123456789ABCDEF
    #  AAAAAAAAAAAAAAA    15 pages faulted
    #  AAAAA     AAAAA    middle unmapped: same anon_vma, linear pgoffs
    #  AAAAAbbbbbAAAAA    unfaulted B moved into the hole
    #  AAAAAAAAAAAAAAA    a three-way merge
    o = run(
        scenario("""
        char *ptr = mmap(&carveout[page_size], 15 * page_size, PROT_READ | PROT_WRITE,
                         MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr[0] = 'x';
        munmap(&ptr[5 * page_size], 5 * page_size);
        char *ptr2 = mmap(&carveout[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
        ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size,
                      MREMAP_MAYMOVE | MREMAP_FIXED, &ptr[5 * page_size]);
        """)
    )
    assert o.failed() == []
    assert o.extent(o["ptr"]) == pages(o, "ptr", 15)


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
CORRECT_PLACED_CHECKS = [(1, 10), (1, 10), (6, 10), (1, 15), (1, 15), (1, 15)]


def correct_placed_checkpoints(flag: str = "") -> list[str]:
    """The scenario cut at each {check}: every prefix ends where the selftest asserts."""
    text = CORRECT_PLACED_FAULTED.replace("{flag}", flag)
    parts = text.split("{check}")
    return ["".join(parts[: i + 1]) for i in range(len(parts) - 1)]


@pytest.mark.parametrize("checkpoint", range(len(CORRECT_PLACED_CHECKS)))
def test_mremap_correct_placed_faulted(run: Callable[[str], Outcome], checkpoint: int) -> None:
    # 0123456789ABCDEF
    #  AAAAAAAAAAAAAAA    15 pages faulted: pieces 1 (ptr), 2 (ptr2), 3 (ptr3)
    #  AAAAAAAAAA         3 then 2 moved away, 2 back: merges     (check 0)
    #       AAAAA         1 away and back: merges                 (check 1)
    #       AAAAAAAAAA    1 away, 3 back after 2: merges           (check 2)
    #  AAAAAAAAAAAAAAA    1 back: three-way merge                  (check 3)
    #  AAAAAAAAAAAAAAA    2 away and back; then 3 away and back    (checks 4, 5)
    o = run(scenario(correct_placed_checkpoints()[checkpoint]))
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
