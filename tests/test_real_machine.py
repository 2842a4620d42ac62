"""RealMachine against the host kernel: the ground truth the simulator is
checked with, so its own answers must be the kernel's, byte for byte."""

import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from engine.mm_constants import PAGE_SIZE
from engine.scenario.constants import CONSTANTS
from engine.sim.backend import Backend, CallResult
from engine.verify.compare import Difference, compare
from engine.verify.real import (
    ExecutorTimeout,
    NotMainline,
    RealMachine,
    RealMachineError,
    canonical_inodes,
    find_compiler,
    normalise_maps_line,
)

if not sys.platform.startswith("linux"):
    pytest.skip("RealMachine runs the calls on a Linux kernel", allow_module_level=True)
if find_compiler() is None:
    pytest.skip("no C compiler (cc, gcc, clang or $CC) for the executor", allow_module_level=True)

P = PAGE_SIZE
NONE = CONSTANTS["PROT_NONE"]
RW = CONSTANTS["PROT_READ"] | CONSTANTS["PROT_WRITE"]
PRIVATE = CONSTANTS["MAP_PRIVATE"] | CONSTANTS["MAP_ANONYMOUS"]
SHARED = CONSTANTS["MAP_SHARED"] | CONSTANTS["MAP_ANONYMOUS"]
FIXED = CONSTANTS["MAP_FIXED"]
MAYMOVE_FIXED = CONSTANTS["MREMAP_MAYMOVE"] | CONSTANTS["MREMAP_FIXED"]
NO_FD = (1 << 64) - 1
# What the simulator assumes: ASLR off, a static executor, vvar at the top.
SIM_MMAP_TOP = 0x7FFFF7FF7000


@pytest.fixture
def machine() -> Iterator[RealMachine]:
    with RealMachine() as m:
        yield m


def mmap(m: Backend, addr: int, pages: int, prot: int, flags: int, proc: str = "main") -> int:
    r = m.syscall(proc, "mmap", [addr, pages * P, prot, flags, NO_FD, 0])
    assert r.result == "ok", r
    assert r.value is not None
    return r.value


def vma(start: int, pages: int, perms: str) -> str:
    return f"{start:x}-{start + pages * P:x} {perms} 00000000 00:00 0"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_mmap_null_lands_just_below_the_vdso(machine: RealMachine) -> None:
    carveout = mmap(machine, 0, 30, NONE, PRIVATE)
    assert machine.mmap_top == SIM_MMAP_TOP
    assert carveout == machine.mmap_top - 30 * P
    assert machine.maps() == {"main": [vma(carveout, 30, "---p")]}


def test_fixed_mmap_into_a_carveout_then_write(machine: RealMachine) -> None:
    # 0123456789...29
    # .....           carve-out, PROT_NONE
    #  AAAAA          MAP_FIXED over pages 1-5, then written
    carveout = mmap(machine, 0, 30, NONE, PRIVATE)
    ptr = mmap(machine, carveout + P, 5, RW, PRIVATE | FIXED)
    assert ptr == carveout + P
    assert machine.syscall("main", "memset", [ptr, ord("x"), 5 * P]) == CallResult("ok", 0)
    assert machine.maps()["main"] == [
        vma(carveout, 1, "---p"),
        vma(ptr, 5, "rw-p"),
        vma(ptr + 5 * P, 24, "---p"),
    ]


def test_mprotect_in_the_middle_splits_into_three(machine: RealMachine) -> None:
    p = mmap(machine, 0, 5, RW, PRIVATE)
    assert machine.syscall("main", "mprotect", [p + P, 3 * P, NONE]) == CallResult("ok", 0)
    assert machine.maps()["main"] == [
        vma(p, 1, "rw-p"),
        vma(p + P, 3, "---p"),
        vma(p + 4 * P, 1, "rw-p"),
    ]


def test_munmap_of_nothing_is_ok(machine: RealMachine) -> None:
    hole = machine.mmap_top - 100 * P
    assert machine.syscall("main", "munmap", [hole, 10 * P]) == CallResult("ok", 0)
    assert machine.maps() == {"main": []}


@pytest.mark.parametrize("relocate", ["MREMAP_RELOCATE_ANON", "MREMAP_MUST_RELOCATE_ANON"])
def test_mainline_rejects_the_relocate_anon_flags(machine: RealMachine, relocate: str) -> None:
    ptr = mmap(machine, 0, 5, RW, PRIVATE)
    assert machine.store("main", ptr, ord("x")) == CallResult("ok", None)
    before = machine.maps()
    flags = MAYMOVE_FIXED | CONSTANTS[relocate]
    target = ptr - 10 * P
    result = machine.syscall("main", "mremap", [ptr, 5 * P, 5 * P, flags, target])
    assert result == CallResult("EINVAL", -1)
    assert machine.maps() == before


def test_mremap_with_four_arguments_moves(machine: RealMachine) -> None:
    wall = mmap(machine, 0, 3, NONE, PRIVATE)
    ptr = mmap(machine, wall, 2, RW, PRIVATE | FIXED)  # the wall's last page stays: growing moves
    moved = machine.syscall("main", "mremap", [ptr, 2 * P, 4 * P, CONSTANTS["MREMAP_MAYMOVE"]])
    assert moved.result == "ok"
    assert moved.value is not None and moved.value != ptr
    assert vma(moved.value, 4, "rw-p") in machine.maps()["main"]


def test_store_into_prot_none_is_sigsegv_and_the_process_goes_on(machine: RealMachine) -> None:
    p = mmap(machine, 0, 2, NONE, PRIVATE)
    assert machine.store("main", p, ord("x")) == CallResult("SIGSEGV", None)
    assert machine.load("main", p + P) == CallResult("SIGSEGV", None)
    assert machine.syscall("main", "memset", [p, 0, 2 * P]) == CallResult("SIGSEGV", None)
    assert machine.syscall("main", "mprotect", [p, P, RW]) == CallResult("ok", 0)
    assert machine.store("main", p, ord("x")) == CallResult("ok", None)
    assert machine.load("main", p) == CallResult("ok", None)


def test_errno_names(machine: RealMachine) -> None:
    assert machine.syscall("main", "munmap", [1, P]) == CallResult("EINVAL", -1)
    p = mmap(machine, 0, 1, RW, PRIVATE)
    noreplace = PRIVATE | CONSTANTS["MAP_FIXED_NOREPLACE"]
    assert machine.syscall("main", "mmap", [p, P, RW, noreplace, NO_FD, 0]) == CallResult(
        "EEXIST", -1
    )


def test_fork_then_store_in_the_child(machine: RealMachine) -> None:
    shared = mmap(machine, 0, 1, RW, SHARED)
    private = mmap(machine, 0, 3, RW, PRIVATE)
    dontfork = CONSTANTS["MADV_DONTFORK"]
    assert machine.syscall("main", "madvise", [private + 2 * P, P, dontfork]) == CallResult("ok", 0)
    forked = machine.fork("main", "child")
    assert forked.result == "ok"
    assert forked.value == machine.pids["child"]
    assert machine.store("child", private, ord("c")) == CallResult("ok", None)
    maps = machine.maps()
    assert list(maps) == ["main", "child"]
    shared_line = maps["main"][-1]
    assert shared_line.startswith(f"{shared:x}-{shared + P:x} rw-s 00000000 ")
    assert shared_line.endswith(" /dev/zero (deleted)")
    # The child shares the shmem inode, and lacks the MADV_DONTFORK page.
    assert maps["child"] == [vma(private, 2, "rw-p"), shared_line]
    assert maps["main"] == [vma(private, 2, "rw-p"), vma(private + 2 * P, 1, "rw-p"), shared_line]


def test_fork_of_a_fork(machine: RealMachine) -> None:
    p = mmap(machine, 0, 1, RW, PRIVATE)
    assert machine.fork("main", "child").result == "ok"
    assert machine.fork("child", "grandchild").result == "ok"
    assert machine.syscall("grandchild", "munmap", [p, P]) == CallResult("ok", 0)
    assert machine.maps() == {
        "main": [vma(p, 1, "rw-p")],
        "child": [vma(p, 1, "rw-p")],
        "grandchild": [],
    }
    assert len(set(machine.pids.values())) == 3


def test_every_process_is_gone_after_the_context() -> None:
    with RealMachine() as m:
        m.fork("main", "child")
        m.fork("child", "grandchild")
        m.fork("main", "second")
        pids = list(m.pids.values())
    assert all(gone(pid) for pid in pids)


def test_every_process_is_gone_after_an_error_inside() -> None:
    with pytest.raises(KeyError), RealMachine() as m:
        m.fork("main", "child")
        pids = list(m.pids.values())
        raise KeyError("scenario bug")
    assert all(gone(pid) for pid in pids)


def test_a_silent_executor_times_out_and_everything_dies() -> None:
    with RealMachine(timeout=0.5) as m:
        m.fork("main", "child")
        pids = list(m.pids.values())
        os.kill(m.pids["child"], signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(ExecutorTimeout, match="child"):
            m.syscall("child", "munmap", [0x10000000, P])
        assert time.monotonic() - started < 5
        assert all(gone(pid) for pid in pids)
        with pytest.raises(RealMachineError, match="earlier error"):
            m.maps()


def test_a_dead_executor_is_a_clear_error() -> None:
    with RealMachine() as m:
        m.fork("main", "child")
        os.kill(m.pids["child"], signal.SIGKILL)
        with pytest.raises(RealMachineError, match="'child'.*died"):
            m.store("child", 0, 0)


def test_pin_is_not_mainline(machine: RealMachine) -> None:
    p = mmap(machine, 0, 1, RW, PRIVATE)
    with pytest.raises(NotMainline) as caught:
        machine.syscall("main", "pin", [p, P])
    assert caught.value.call == "pin"
    assert machine.maps() == {"main": [vma(p, 1, "rw-p")]}


def test_normalise_maps_line() -> None:
    padded = "7ffff7fd8000-7ffff7fd9000 rw-s 00000000 00:01 1025" + " " * 20 + "/dev/zero (deleted)"
    assert normalise_maps_line(padded) == (
        "7ffff7fd8000-7ffff7fd9000 rw-s 00000000 00:01 1025 /dev/zero (deleted)"
    )
    assert normalise_maps_line("7ffff7fd9000-7ffff7ff7000 ---p 00000000 00:00 0 \n") == (
        "7ffff7fd9000-7ffff7ff7000 ---p 00000000 00:00 0"
    )


def test_canonical_inodes_by_first_appearance() -> None:
    lines = [
        "1000-2000 rw-s 00000000 00:01 77 /dev/zero (deleted)",
        "2000-3000 rw-p 00000000 00:00 0",
        "3000-4000 rw-s 00000000 00:01 12 /dev/zero (deleted)",
        "5000-6000 rw-s 00000000 00:01 77 /dev/zero (deleted)",
    ]
    assert [line.split()[4] for line in canonical_inodes(lines)] == ["1", "0", "2", "1"]


def run_real(statements: list[tuple[str, str, list[int]]]) -> list[dict[str, object]]:
    """A tiny scenario, as the JSON contract's steps; args may name earlier
    results as -1 - index."""
    steps: list[dict[str, object]] = []
    values: list[int] = []
    with RealMachine() as m:
        for line, (source, call, args) in enumerate(statements, start=1):
            real_args = [values[-1 - a] if a < 0 else a for a in args]
            r = m.syscall("main", call, real_args)
            values.append(r.value or 0)
            steps.append(
                {"line": line, "source": source, "process": "main", "result": r.result,
                 "value": r.value, "maps": m.maps()}
            )  # fmt: skip
    return steps


SCENARIO = [
    ("char *s = mmap(NULL, page_size, ...);", "mmap", [0, P, RW, SHARED, NO_FD, 0]),
    ("char *p = mmap(NULL, 2 * page_size, ...);", "mmap", [0, 2 * P, RW, PRIVATE, NO_FD, 0]),
    ("memset(p, 'x', 2 * page_size);", "memset", [-2, ord("x"), 2 * P]),
]


def test_two_real_runs_agree_despite_fresh_inodes() -> None:
    first, second = run_real(SCENARIO), run_real(SCENARIO)
    assert first[0]["maps"] != second[0]["maps"]  # a new shmem inode each run
    assert compare(first, second) == []


def test_compare_reports_results_values_and_maps_in_75_columns() -> None:
    real = run_real(SCENARIO)
    sim = [dict(step) for step in real]
    sim[1] = {**sim[1], "value": 0x7FFFF7FD0000, "maps": {"main": [vma(0x7FFFF7FD0000, 2, "rw-p")]}}
    sim[2] = {**sim[2], "result": "SIGSEGV", "value": None}
    differences = compare(sim, real)
    assert [d.what for d in differences] == ["value", "maps:main", "result"]
    assert differences[2] == Difference(
        3, "memset(p, 'x', 2 * page_size);", "result", ("SIGSEGV",), ("ok",)
    )
    text = "\n".join(str(d) for d in differences)
    assert "  result: simulated SIGSEGV, real ok" in text
    assert "  - 7ffff7fd0000-7ffff7fd2000 rw-p 00000000 00:00 0" in text
    assert max(len(line) for line in text.splitlines()) <= 75


def test_compare_reports_a_missing_process_and_a_missing_step() -> None:
    real = run_real(SCENARIO)
    sim = [dict(step) for step in real[:2]]
    sim[0] = {**sim[0], "maps": {**real[0]["maps"], "child": []}}  # type: ignore[dict-item]
    differences = compare(sim, real)
    assert [(d.what, d.simulated is None, d.real is None) for d in differences] == [
        ("maps:child", False, True),
        ("steps", True, False),
    ]
    assert "process child: only in the simulation" in str(differences[0])
    assert "statement: only in the real kernel" in str(differences[1])
