"""The MREMAP_RELOCATE_ANON series' merge.c selftests (v1 patches 06, 07, 11).

Patch 06's cases merge without the flag and must merge with it too; patch
07's move a faulted VMA with MREMAP_MUST_RELOCATE_ANON next to others and
expect the merge relocation makes possible; patch 11's refuse (-EFAULT) a
VMA whose anon_vma is shared with a fork, in parent and child alike.

The flags exist only in the proposed series, so these run on the engine
alone. Without the flag the same scenarios are mainline: there the engine
must agree with this host's kernel, the truth for what mainline does.

After every successful relocating mremap the rmap must be exact: each
mapped folio's index is linear_page_index() of its VMA, and its mapping is
that VMA's anon_vma. Pictures as in merge.c's: one column per
page of the carve-out, upper case faulted, lower case unfaulted.
Mainline's merge.c bodies are shared with test_selftests_merge.py, in
tests/support/merge_c.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.invariants import check
from engine.mm_constants import PAGE_SIZE
from engine.mm_types import State
from engine.pagemap import linear_page_index
from engine.pagetable import ZERO_PAGE
from engine.sim.simulation import Run, run_source
from tests.support.merge_c import (
    CORRECT_PLACED_CHECKS,
    MREMAP_UNFAULTED,
    UNFAULTED_BETWEEN_CORRECTLY_PLACED,
    correct_placed_checkpoints,
    flagged,
    scenario,
)
from tests.support.outcome import Outcome, engine_outcome, on_kernel

P = PAGE_SIZE
MUST = "MREMAP_MUST_RELOCATE_ANON"
RELOCATE = "MREMAP_RELOCATE_ANON"


@dataclass
class EngineRun:
    run: Run
    outcome: Outcome

    def __getitem__(self, name: str) -> int:
        return self.outcome[name]

    @property
    def final(self) -> State:
        return self.run.steps[-1].state

    def extent(self, addr: int, process: str = "main") -> tuple[int, int] | None:
        return self.outcome.extent(addr, process)

    def results(self) -> list[tuple[str, str]]:
        return self.outcome.results

    def failed(self) -> list[tuple[str, str]]:
        return self.outcome.failed()


def on_engine(source: str) -> EngineRun:
    run = run_source(source)
    return EngineRun(run, engine_outcome(run))


def rmap_mismatches(state: State, process: str = "main") -> list[str]:
    """Mapped anon folios whose index or mapping disagree with the VMA mapping them."""
    found = []
    pagetable = state.processes[process].pagetable
    for vma in state.mm_vmas(process):
        for vpn, pte in pagetable.items(vma.vm_start // P, vma.vm_end // P):
            if not pte.present or pte.folio == ZERO_PAGE:
                continue
            folio = state.folios[pte.folio]
            addr = vpn * P
            if folio.index + pte.page != linear_page_index(vma, addr):
                found.append(
                    f"{addr:#x}: folio#{folio.id} index {folio.index + pte.page}"
                    f" != linear_page_index {linear_page_index(vma, addr)}"
                )
            if folio.mapping != vma.anon_vma:
                found.append(
                    f"{addr:#x}: folio#{folio.id} mapping anon_vma#{folio.mapping}"
                    f" != the VMA's anon_vma#{vma.anon_vma}"
                )
    return found


def assert_rmap_exact(r: EngineRun) -> None:
    """After each relocating mremap that succeeded, and at the end: an exact rmap."""
    for s in r.run.statements:
        st = s.outcome.statement
        if "RELOCATE_ANON" in st.source and s.outcome.result.result == "ok":
            state = r.run.steps[s.last - 1].state
            assert rmap_mismatches(state, st.process) == [], st.source
    assert [v.message for v in check(r.final)] == []


# --- patch 06: mainline merges, with the flag too ---------------------------

FLAGS = pytest.mark.parametrize("flag", [RELOCATE, MUST])


@FLAGS
@pytest.mark.parametrize("name", list(MREMAP_UNFAULTED))
def test_06_mremap_unfaulted(name: str, flag: str) -> None:
    # An unfaulted VMA has nothing to relocate: each merges as on mainline
    # (the pictures: tests/support/merge_c.py, at MREMAP_UNFAULTED).
    case = MREMAP_UNFAULTED[name]
    r = on_engine(case.source(flag))
    assert r.failed() == []
    for var, n in case.extents:
        assert r.extent(r[var]) == (r[var], r[var] + n * P), var
    assert_rmap_exact(r)


@FLAGS
def test_06_mremap_correct_placed_faulted(flag: str) -> None:
    # Every move of a piece of one faulted 15-page VMA carries the flag; each
    # return home re-merges, as without it (tests/support/merge_c.py).
    for text, (first, n) in zip(
        correct_placed_checkpoints(flag), CORRECT_PLACED_CHECKS, strict=True
    ):
        r = on_engine(text)
        assert r.failed() == []
        start = r["carveout"] + first * P
        assert r.extent(start) == (start, start + n * P), text.strip().splitlines()[-2:]
        assert_rmap_exact(r)


# --- patch 07: MUST_RELOCATE_ANON makes faulted moves merge -----------------

TWO = """
char *ptr = mmap(&carveout[{a} * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[{b} * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED,
              ptr2 + page_size * 1000);
{fault}
ptr2[0] = 'x';
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              {dest});
"""

THREE = """
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[7 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
char *ptr3 = mmap(&carveout[14 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED,
              ptr2 + page_size * 1000);
ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED,
              ptr3 + page_size * 2000);
ptr3 = mremap(ptr3, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED,
              &ptr[10 * page_size]);
{fault}
ptr2[0] = 'x';
{fault3}
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr[5 * page_size]);
"""

MPROTECT_FAULTED_FAULTED = """
char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
char *ptr2 = mmap(&carveout[12 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                  MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
ptr[0] = 'x';
ptr2[0] = 'x';
mprotect(ptr2, 5 * page_size, PROT_READ);
ptr2 = mremap(ptr2, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED{flag},
              &ptr[5 * page_size]);
{check}
mprotect(ptr2, 5 * page_size, PROT_READ | PROT_WRITE);
"""

FAULT_PTR = "ptr[0] = 'x';"
FAULT_PTR3 = "ptr3[0] = 'x';"


def _two(a: int, b: int, faulted_ptr: bool, dest: str) -> str:
    return (
        TWO.replace("{a}", str(a))
        .replace("{b}", str(b))
        .replace("{fault}", FAULT_PTR if faulted_ptr else "")
        .replace("{dest}", dest)
    )


def _three(faulted_ptr: bool, faulted_ptr3: bool) -> str:
    return THREE.replace("{fault}", FAULT_PTR if faulted_ptr else "").replace(
        "{fault3}", FAULT_PTR3 if faulted_ptr3 else ""
    )


# name: (template without {flag}, the VMA asserted on (variable), pages with
# MUST_RELOCATE_ANON, pages on mainline without the flag). The mainline
# figures are what this host's kernel does (test_07_without_flag_*).
PATCH_07: dict[str, tuple[str, str, int, int]] = {
    # 0123456789A
    #  aaaaaBBBBB     B faulted far away, relocated after unfaulted A
    #  AAAAAAAAAA     (mainline: B's pgoff is not linear here, aaaaa|BBBBB)
    "faulted_after_unfaulted": (_two(1, 7, False, "&ptr[5 * page_size]"), "ptr", 10, 5),
    # 0123456789A
    #  BBBBBaaaaa     B relocated before unfaulted A
    #  AAAAAAAAAA
    "faulted_before_unfaulted": (_two(6, 12, False, "&carveout[page_size]"), "ptr2", 10, 5),
    # 0123456789ABCDEF
    #  aaaaaBBBBBccccc
    #  AAAAAAAAAAAAAAA
    "faulted_between_unfaulted": (_three(False, False), "ptr", 15, 5),
    # 0123456789A
    #  AAAAABBBBB     two anon_vmas: B's folios move into A's
    #  AAAAAAAAAA
    "faulted_after_faulted": (_two(1, 7, True, "&ptr[5 * page_size]"), "ptr", 10, 5),
    "faulted_before_faulted": (_two(6, 12, True, "&carveout[page_size]"), "ptr2", 10, 5),
    # 0123456789ABCDEF
    #  AAAAABBBBBccccc
    #  AAAAAAAAAAAAAAA
    "faulted_between_faulted_unfaulted": (_three(True, False), "ptr", 15, 5),
    # 0123456789ABCDEF
    #  aaaaaBBBBBCCCCC
    #  AAAAAAAAAAAAAAA
    "faulted_between_unfaulted_faulted": (_three(False, True), "ptr", 15, 5),
    # 0123456789ABCDEF
    #  AAAAABBBBBCCCCC    three anon_vmas: B goes into one, merges one side
    #  AAAAA|BBBBBBBBBB   only B and its next merge
    "faulted_between_faulted": (_three(True, True), "ptr2", 10, 5),
    # 0123456789ABCDEF
    #  AAAAABBBBBAAAAA    B faulted elsewhere, moved into A's hole
    #  AAAAAAAAAAAAAAA
    "faulted_between_correctly_placed_faulted": (
        UNFAULTED_BETWEEN_CORRECTLY_PLACED.replace("{fault2}", "ptr2[0] = 'x';"),
        "ptr",
        15,
        5,
    ),
}


@pytest.mark.parametrize("name", list(PATCH_07))
def test_07_mremap_relocate_anon(name: str) -> None:
    template, var, relocated, _ = PATCH_07[name]
    r = on_engine(scenario(flagged(template, MUST)))
    assert r.failed() == []
    assert r.extent(r[var]) == (r[var], r[var] + relocated * P)
    assert_rmap_exact(r)


def test_07_mremap_relocate_anon_mprotect_faulted_faulted() -> None:
    # 0123456789A
    #  AAAAA|BBBBB    B (RO) relocated after A (RW): flags differ, no merge
    #  AAAAAAAAAA     B mprotected RW: same anon_vma, linear pgoff, merges
    src = flagged(MPROTECT_FAULTED_FAULTED, MUST)
    before, _ = src.split("{check}")
    r = on_engine(scenario(before))
    assert r.failed() == []
    assert r.extent(r["ptr"]) == (r["ptr"], r["ptr"] + 5 * P)
    assert_rmap_exact(r)
    r = on_engine(scenario(src.replace("{check}", "")))
    assert r.failed() == []
    assert r.extent(r["ptr"]) == (r["ptr"], r["ptr"] + 10 * P)
    assert_rmap_exact(r)


# --- mainline unchanged: the same scenarios without the flag ----------------


def _mainline_cases() -> list[tuple[str, str, str, int]]:
    cases = [(name, t, var, n) for name, (t, var, _, n) in PATCH_07.items()]
    src = MPROTECT_FAULTED_FAULTED.replace("{check}", "")
    cases.append(("mprotect_faulted_faulted", src, "ptr", 5))
    return cases


@pytest.mark.parametrize(
    ("name", "template", "var", "pages"),
    _mainline_cases(),
    ids=[c[0] for c in _mainline_cases()],
)
def test_07_without_flag_engine(name: str, template: str, var: str, pages: int) -> None:
    r = on_engine(scenario(flagged(template)))
    assert r.failed() == []
    assert r.extent(r[var]) == (r[var], r[var] + pages * P)
    assert [v.message for v in check(r.final)] == []


@pytest.mark.parametrize(
    ("name", "template", "var", "pages"),
    _mainline_cases(),
    ids=[c[0] for c in _mainline_cases()],
)
def test_07_without_flag_kernel(name: str, template: str, var: str, pages: int) -> None:
    o = on_kernel(scenario(flagged(template)))
    assert o.failed() == []
    assert o.extent(o[var]) == (o[var], o[var] + pages * P)


# --- patch 11: forked anon_vmas refuse relocation ---------------------------

MOVE_ONE = (
    "ptr2 = mremap(ptr, page_size, page_size,"
    " MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_MUST_RELOCATE_ANON, &carveout[3 * page_size]);"
)

A = """
char *ptr = mmap(carveout, 3 * page_size, PROT_READ | PROT_WRITE,
                 MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
ptr[0] = 'x';
char *ptr2 = 0;
"""


def _efault_everywhere(r: EngineRun, processes: list[str]) -> None:
    moves = [(s, res) for s, res in r.results() if "MUST_RELOCATE_ANON" in s]
    assert moves and all(res == "EFAULT" for _, res in moves), moves
    for proc in processes:
        if proc in r.outcome.maps:
            # A stays whole where it was (MREMAP_FIXED has unmapped the
            # target page before the refusal, as mremap_to() does first).
            assert r.extent(r["ptr"], proc) == (r["ptr"], r["ptr"] + 3 * P), proc
    assert [v.message for v in check(r.final)] == []


def test_11_mremap_relocate_anon_single_fork() -> None:
    # process 1: AAA           A faulted, then fork
    # process 2: AAA           both: move A's first page to page 3 -> EFAULT
    src = A + f"pid_t p2 = fork();\n{MOVE_ONE}\np2: {MOVE_ONE}\n"
    r = on_engine(scenario(src))
    assert [res for s, res in r.results() if "fork" in s] == ["ok"]
    _efault_everywhere(r, ["main", "p2"])
    assert r.extent(r["ptr"]) == (r["ptr"], r["ptr"] + 3 * P)
    assert r.extent(r["ptr"], "p2") == (r["ptr"], r["ptr"] + 3 * P)


def test_11_mremap_relocate_anon_fork_twice() -> None:
    # process 1 -> 2 -> 3, each holding A: every process's move -> EFAULT
    src = (
        A
        + "pid_t p2 = fork();\n"
        + f"{MOVE_ONE}\n"
        + "p2: pid_t p3 = fork();\n"
        + f"p2: {MOVE_ONE}\n"
        + f"{MOVE_ONE}\n"
        + f"p3: {MOVE_ONE}\n"
    )
    r = on_engine(scenario(src))
    _efault_everywhere(r, ["main", "p2", "p3"])


def test_11_mremap_relocate_anon_3_times_reuse_anon_vma() -> None:
    # process 1 -> 2 -> 3; 2 unmaps A (its anon_vma stays, num_children
    # stays raised); 3 -> 4, which may reuse 2's anon_vma: all -> EFAULT
    src = (
        A
        + "pid_t p2 = fork();\n"
        + f"{MOVE_ONE}\n"
        + "p2: pid_t p3 = fork();\n"
        + f"p2: {MOVE_ONE}\n"
        + "p2: munmap(ptr, 3 * page_size);\n"
        + f"{MOVE_ONE}\n"
        + "p3: pid_t p4 = fork();\n"
        + f"p3: {MOVE_ONE}\n"
        + f"{MOVE_ONE}\n"
        + f"p4: {MOVE_ONE}\n"
    )
    r = on_engine(scenario(src))
    _efault_everywhere(r, ["main", "p3", "p4"])


# --- uAPI -------------------------------------------------------------------


@pytest.mark.parametrize("flag", [RELOCATE, MUST])
def test_relocate_anon_without_maymove_is_einval(flag: str) -> None:
    # 0123456789
    #  AAAAA          mremap(ptr, 5p, 5p, flag): the series demands MAYMOVE
    src = f"""
    char *ptr = mmap(&carveout[page_size], 5 * page_size, PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE | MAP_FIXED, -1, 0);
    ptr[0] = 'x';
    char *ptr2 = mremap(ptr, 5 * page_size, 5 * page_size, {flag});
    """
    r = on_engine(scenario(src))
    assert r.results()[-1][1] == "EINVAL"
    assert r.extent(r["ptr"]) == (r["ptr"], r["ptr"] + 5 * P)
