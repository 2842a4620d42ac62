"""Per-page state: the --pages contract, its limit, the machine profile and
the page-level comparison's rules (folios renamed, fields without root)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import pytest

from engine.cli import main
from engine.memory import handle_mm_fault
from engine.mmap import do_mmap
from engine.present.report import run_json
from engine.procfs import process_pages
from engine.sim.backend import PAGEMAP_FIELDS, PageRecord, ProcessPages
from engine.sim.kernel import Kernel
from engine.sim.limits import LimitExceeded, Limits
from engine.sim.profile import DEFAULT, host_profile
from engine.sim.simulation import run_source
from engine.uapi import MAP, PROT
from engine.verify.compare import compare
from tests.support.host import assert_kernel_agrees

THP_FORK = """\
char *t = mmap(NULL, 1024 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *h = mmap(t, 512 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(h, 512 * page_size, MADV_HUGEPAGE);
h[3 * page_size] = 'x';
char v = t[600 * page_size];
pid_t child = fork();
child: h[5 * page_size] = 'y';
"""


def test_a_pmd_mapped_thp_is_one_run_and_fork_shares_its_folio() -> None:
    document = run_json(run_source(THP_FORK), pages=True)
    steps = document["steps"]
    assert isinstance(steps, list)
    after_fork = steps[5]["pages"]
    (main_thp,) = after_fork["main"]
    assert main_thp["pages"] == 512 and main_thp["pmd_mapped"] and main_thp["order"] == 9
    assert main_thp["mapcount"] == 2 and not main_thp["exclusive"]
    assert after_fork["child"][0]["folio"] == main_thp["folio"]
    # The child's write splits its PMD and copies page 5: runs break around it.
    child = steps[6]["pages"]["child"]
    assert [r["pages"] for r in child] == [5, 1, 506]
    assert child[1]["folio"] != main_thp["folio"] and child[1]["exclusive"]
    assert child[2]["page_in_folio"] == 6 and child[2]["index"] == main_thp["index"] + 6


def test_page_records_are_bounded_by_a_named_limit() -> None:
    run = run_source(THP_FORK)
    with pytest.raises(LimitExceeded) as caught:
        run_json(run, pages=True, limits=Limits(max_page_records=1000))
    assert caught.value.name == "max_page_records"


def test_cli_pages_needs_json_and_prints_pages(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.c"
    path.write_text(THP_FORK)
    assert main(["run", str(path), "--pages"]) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["run", str(path), "--json", "--pages"]) == 0
    steps = json.loads(capsys.readouterr().out)["steps"]
    assert set(steps[-1]["pages"]) == {"main", "child"}


def test_the_default_profile_matches_this_host() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux sysfs")
    assert replace(host_profile(), name=DEFAULT.name) == DEFAULT


def test_thp_always_faults_a_thp_without_madv_hugepage() -> None:
    for mode, order in (("always", 9), ("madvise", 0)):
        k = Kernel(profile=replace(DEFAULT, thp_enabled=mode))
        addr = do_mmap(
            k,
            "main",
            0,
            4 << 20,
            PROT["PROT_READ"] | PROT["PROT_WRITE"],
            MAP["MAP_PRIVATE"] | MAP["MAP_ANONYMOUS"],
            -1,
            0,
        )
        addr = (addr + (2 << 20) - 1) & ~((2 << 20) - 1)
        assert handle_mm_fault(k, "main", addr, write=True) == "ok"
        k.step("test", "faulted")
        assert process_pages(k.state, "main").pages[0].order == order


def _one(name: str, records: list[PageRecord], fields: tuple[str, ...]) -> dict[str, object]:
    return {
        "line": 1,
        "source": "x;",
        "process": "main",
        "result": "ok",
        "value": None,
        "maps": {name: []},
        "pages": {name: ProcessPages(records, {}, fields)},
    }


def test_folios_compare_by_sharing_and_unknown_fields_are_skipped() -> None:
    def page(addr: int, folio: int, mapcount: int | None = 1) -> PageRecord:
        return PageRecord(
            addr, "present", None, folio, 0, 0, None, None, True, mapcount, True, None
        )

    full = ("entry", "zero", "folio", "order", "page_in_folio", "anon", "mapcount", "exclusive")
    sim = _one("main", [page(0x1000, 7), page(0x2000, 8)], full)
    # Other numbers, same structure: agree. Both pages one folio: differ.
    assert compare([sim], [_one("main", [page(0x1000, 900), page(0x2000, 5)], full)]) == []
    same = compare([sim], [_one("main", [page(0x1000, 900), page(0x2000, 900)], full)])
    assert [d.what for d in same] == ["pages:main"]
    # Without root the real side knows only pagemap's bits: mapcount is not compared.
    blind = _one("main", [page(0x1000, 0, None), page(0x2000, 0, None)], PAGEMAP_FIELDS)
    assert compare([sim], [blind]) == []


THP_COLD = """\
char *t = mmap(NULL, 1024 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *h = mmap(t + 512 * page_size, 512 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(h, 512 * page_size, MADV_HUGEPAGE);
h[3 * page_size] = 'w';
memset(h + 8 * page_size, 'm', 2 * page_size);
memset(h + 9 * page_size, 0, page_size);
h[20 * page_size] = 0;
madvise(h + 100 * page_size, page_size, MADV_COLD);
"""


def test_splitting_a_thp_maps_its_pages_without_data_to_the_zero_page() -> None:
    steps = run_json(run_source(THP_COLD), pages=True)["steps"]
    assert isinstance(steps, list)
    runs = steps[-1]["pages"]["main"]
    # Pages 3 and 8 hold data and stay, each its own small folio; page 9 was
    # cleared whole and page 20 only stored a zero: both are zero pages.
    kept = [(r["addr"], r["pages"], r["order"]) for r in runs if r["zero"] is None]
    base = runs[0]["addr"]
    assert kept == [(base + 3 * 4096, 1, 0), (base + 8 * 4096, 1, 0)]
    assert sum(r["pages"] for r in runs if r["zero"] == "zero") == 510


REUSE_THEN_LAST_PAGE = """\
char *t = mmap(NULL, 4096 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *h = mmap(t + 1024 * page_size, 512 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(h, 512 * page_size, MADV_HUGEPAGE);
memset(h, 'm', 512 * page_size);
mprotect(h + 387 * page_size, 1 * page_size, PROT_READ);
pid_t child = fork();
child: madvise(h, 512 * page_size, MADV_DONTNEED);
h[279 * page_size] = 'w';
munmap(h + 1 * page_size, 511 * page_size);
h[0] = 'w';
"""


def test_reusing_a_large_folio_makes_only_the_written_page_exclusive() -> None:
    # page 0 ... 279 ... 511 of one THP, PTE-mapped, after fork and the
    # child's DONTNEED:  write 279 -> reused (279 AnonExclusive, 0 not);
    # munmap 1..511 -> page 0 is the folio's last mapping; write 0 ->
    # copied (__wp_can_reuse_large_anon_folio frees such a folio), as the
    # kernel does (page_sweep thp_reuse seed 541).
    steps = run_json(run_source(REUSE_THEN_LAST_PAGE), pages=True)["steps"]
    assert isinstance(steps, list)
    (before,) = steps[-2]["pages"]["main"]
    (after,) = steps[-1]["pages"]["main"]
    assert before["order"] == 9 and before["pages"] == 1
    assert after["folio"] != before["folio"] and after["order"] == 0 and after["exclusive"]


POPULATE_WRITE_SHARED = """\
char *t = mmap(NULL, 4096 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *s = mmap(t + 3072 * page_size, 512 * page_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE, -1, 0);
madvise(s + 1 * page_size, 511 * page_size, MADV_DONTNEED);
madvise(s + 1 * page_size, 1 * page_size, MADV_POPULATE_WRITE);
madvise(s + 64 * page_size, 1 * page_size, MADV_POPULATE_READ);
"""


def test_populate_write_of_a_shared_page_maps_no_pages_around_it() -> None:
    # page     0  1  2..15  64  65..79 (of 512, all in the page cache)
    # populate P                       MAP_POPULATE: read faults, then
    # dontneed P  .  .      .   .      pages 1..511 unmapped
    # write    P  P  .      .   .      FOLL_WRITE: do_shared_fault, one page
    # read     P  P  .      P   P      do_read_fault maps the cache around
    # (page_sweep populate seed 2036: the kernel has 2 pages after the write)
    steps = run_json(run_source(POPULATE_WRITE_SHARED), pages=True)["steps"]
    assert isinstance(steps, list)

    def resident(step: dict[str, object]) -> int:
        pages = step["pages"]
        assert isinstance(pages, dict)
        return sum(r["pages"] for r in pages["main"])

    write = next(i for i, s in enumerate(steps) if s["line"] == 4)
    read = next(i for i, s in enumerate(steps) if s["line"] == 5)
    assert resident(steps[read - 1]) == 2
    assert resident(steps[read]) == 2 + 16
    assert resident(steps[write - 1]) == 1


MADV_FREE_MOVED_THP = """\
char *t = mmap(NULL, 1536 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *h = mmap(t, 512 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(h, 512 * page_size, MADV_HUGEPAGE);
h[500 * page_size] = 'x';
char *r = mremap(h, 511 * page_size, 511 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, t + 1024 * page_size);
madvise(h, 512 * page_size, MADV_FREE);
"""


def _columns(step: dict[str, object], first: int, count: int) -> str:
    """One column per page from address `first`: the folio's letter (upper
    case large, lower case small, in order of appearance), 0 for the zero
    page, . for none."""
    pages = step["pages"]
    assert isinstance(pages, dict)
    at: dict[int, str] = {}
    letters: dict[object, str] = {}
    for run in pages["main"]:
        for i in range(run["pages"]):
            if run["zero"]:
                symbol = "0"
            else:
                letter = letters.setdefault(run["folio"], "abcdefgh"[len(letters)])
                symbol = letter.upper() if run["order"] else letter
            at[run["addr"] + i * 4096] = symbol
    return "".join(at.get(first + i * 4096, ".") for i in range(count))


def test_madv_free_splits_a_thp_whose_other_pages_mremap_moved() -> None:
    #            r: THP pages 0..510 (moved)       h: page 511
    # page       0 .. 499  500  501 .. 510         511
    # mremap     A    A    A    A     A            A      one THP, PTE-mapped in two VMAs
    # MADV_FREE  0    0    b    0     0            0      at h+511 the PTE batch is 1 page
    #                                                     of 512: split_folio(); the pages
    #                                                     holding no data map the zero page
    # (page_sweep mixed seed 242: the engine took the folio for whole in the range,
    # from where its head would be, and kept it)
    steps = run_json(run_source(MADV_FREE_MOVED_THP), pages=True)["steps"]
    assert isinstance(steps, list)
    t = steps[0]["value"]
    moved, freed = steps[4], steps[5]
    assert _columns(moved, t + 1024 * 4096, 511) + _columns(moved, t + 511 * 4096, 1) == "A" * 512
    after = _columns(freed, t + 1024 * 4096, 511) + _columns(freed, t + 511 * 4096, 1)
    assert after == "0" * 500 + "a" + "0" * 11


POPULATE_PAST_SHMEM_END = """\
char *t = mmap(NULL, 1024 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *s = mmap(t, 4 * page_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
char *r = mremap(s, 4 * page_size, 8 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, t + 512 * page_size);
madvise(r, 8 * page_size, MADV_POPULATE_WRITE);
madvise(r, 8 * page_size, MADV_POPULATE_READ);
"""


def test_populate_stops_with_efault_past_the_end_of_a_shmem_object() -> None:
    # page of r        0  1  2  3 | 4  5  6  7   the object has 4 pages, the VMA 8
    # POPULATE_WRITE   a  b  c  d | .  .  .  .   page 4: VM_FAULT_SIGBUS, -EFAULT
    # POPULATE_READ    a  b  c  d | .  .  .  .   the same, nothing new
    # (page_sweep mixed seed 694: the engine went on to the next VMA, -EINVAL)
    run = run_source(POPULATE_PAST_SHMEM_END)
    assert [s.outcome.result.result for s in run.statements][3:] == ["EFAULT", "EFAULT"]
    steps = run_json(run, pages=True)["steps"]
    assert isinstance(steps, list)
    r = steps[2]["value"]
    assert _columns(steps[3], r, 8) == "abcd...."
    assert _columns(steps[4], r, 8) == "abcd...."


FAULTED_STORE_IN_A_THP = """\
char *t = mmap(NULL, 1024 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
char *h = mmap(t, 528 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
madvise(h, 528 * page_size, MADV_HUGEPAGE);
h[15 * page_size + 1] = 1;
mprotect(h, 512 * page_size, PROT_READ);
h[9 * page_size + 4095] = 1;
madvise(h + 16 * page_size, 512 * page_size, MADV_COLD);
"""


def test_a_store_whose_first_byte_faults_leaves_no_data() -> None:
    # page of h    0 .. 8  9  10 .. 14  15  16 .. 511   one THP, h[15] written
    # store h[9]   A    A  A  A     A   A   A           PROT_READ: SIGSEGV, nothing written
    # MADV_COLD    0    0  0  0     0   a   0           split: the pages without data
    #                                                    map the zero page, page 9 too
    # (page_sweep mixed seed 3940: the engine marked page 9 as written by the
    # store that faulted on its first byte, an empty range)
    run = run_source(FAULTED_STORE_IN_A_THP)
    assert run.statements[5].outcome.result.result == "SIGSEGV"
    steps = run_json(run, pages=True)["steps"]
    assert isinstance(steps, list)
    h = steps[1]["value"]
    assert _columns(steps[5], h, 512) == "A" * 512
    assert _columns(steps[6], h, 512) == "0" * 15 + "a" + "0" * 496


@pytest.mark.parametrize(
    "source",
    [POPULATE_WRITE_SHARED, MADV_FREE_MOVED_THP, POPULATE_PAST_SHMEM_END, FAULTED_STORE_IN_A_THP],
    ids=[
        "populate-write-shared",
        "madv-free-moved-thp",
        "populate-past-shmem-end",
        "faulted-store-in-a-thp",
    ],
)
def test_the_kernel_agrees_on_each_sweep_finding(source: str) -> None:
    assert_kernel_agrees(source)
