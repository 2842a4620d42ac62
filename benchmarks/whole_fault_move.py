"""whole_fault_move: the fault + MREMAP_RELOCATE_ANON move, run as a user runs it.

    .venv/bin/python -m benchmarks.whole_fault_move [N ...]

Side by side in one run, each a whole process timed from fork to exit
(os.wait4: wall seconds and that process's peak RSS), for N = 4,096 ...
262,144 (a is 2N pages at the start of a 3N-page PROT_NONE reservation,
b N pages, both memset, b moved to a + 2N with MREMAP_MAYMOVE |
MREMAP_FIXED | MREMAP_RELOCATE_ANON; the move must succeed):

- `C`: benchmarks/fault_move.c, compiled with the system `cc -O2`, the same
  syscalls on the host kernel;
- `run`: `python -m engine run FILE` (text);
- `run --json`: `python -m engine run FILE --json`;
- `run --json --pages`: the same with every page after each statement,
  where its 8N page records fit Limits.max_page_records (N <= 131,072).

Prints seconds, the ratio to C, t(N)/t(N/2), peak RSS and output bytes.
Targets (issue 11): `run --json` no slower than C, peak RSS <= 512 MiB,
t(2N)/t(N) <= 2.1. 262,144 (3N = 786,432 pages) fits the CLI's
max_populated_pages (1,048,576). `--pages` has no target of its own here
(its document is per page by design): its growth is printed.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import PYTHON, ROOT, print_machine, verdict
from engine.sim.limits import Limits

SIZES = (4096, 8192, 16384, 32768, 65536, 131072, 262144)
TARGET_RATIO = 1.0
TARGET_RSS_MIB = 512
TARGET_GROWTH = 2.1


def scenario(n: int) -> str:
    flags = "MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_RELOCATE_ANON"
    rw, private = "PROT_READ | PROT_WRITE", "MAP_PRIVATE | MAP_ANONYMOUS"
    return (
        f"char *r = mmap(NULL, {3 * n} * page_size, PROT_NONE, {private}, -1, 0);\n"
        f"char *a = mmap(r, {2 * n} * page_size, {rw}, {private} | MAP_FIXED, -1, 0);\n"
        f"char *b = mmap(NULL, {n} * page_size, {rw}, {private}, -1, 0);\n"
        f"memset(a, 'a', {2 * n} * page_size);\n"
        f"memset(b, 'b', {n} * page_size);\n"
        f"char *c = mremap(b, {n} * page_size, {n} * page_size, {flags}, a + {2 * n} * page_size);\n"
    )


def whole(cmd: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB, stdout bytes) of one process."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=out, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}")
        return seconds, usage.ru_maxrss / 1024, out.tell()


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or list(SIZES)
    print_machine()
    work = Path(tempfile.mkdtemp(prefix="whole_fault_move."))
    binary = work / "fault_move"
    subprocess.run(
        ["cc", "-O2", "-o", str(binary), str(ROOT / "benchmarks/fault_move.c")], check=True
    )
    modes = {"run": [], "run --json": ["--json"], "run --json --pages": ["--json", "--pages"]}
    print(
        f"{'N':>8} {'mode':<18} {'seconds':>8} {'x C':>6} {'t/t(N/2)':>9} {'RSS MiB':>8} {'bytes':>10}"
    )
    ok = True
    previous: dict[tuple[str, int], float] = {}
    for n in sizes:
        source = work / f"fault_move_{n}.c"
        source.write_text(scenario(n))
        c_seconds, c_rss, _ = whole([str(binary), str(n)])
        moved = subprocess.run(
            [PYTHON, "-m", "engine", "run", str(source)], capture_output=True, text=True, cwd=ROOT
        ).stdout
        if "= ok, returns" not in moved.split("line 6,")[-1]:
            raise SystemExit(f"N={n}: the model's mremap did not succeed")
        print(f"{n:>8} {'C':<18} {c_seconds:>8.2f} {'':>6} {'':>9} {c_rss:>8.0f} {'':>10}")
        for mode, extra in modes.items():
            if "--pages" in extra and 8 * n > Limits().max_page_records:
                print(f"{n:>8} {mode:<18} (8N page records > max_page_records)")
                continue
            seconds, rss, size = whole([PYTHON, "-m", "engine", "run", str(source), *extra])
            half = previous.get((mode, n // 2))
            growth = seconds / half if half else math.nan
            previous[(mode, n)] = seconds
            print(
                f"{n:>8} {mode:<18} {seconds:>8.2f} {seconds / c_seconds:>6.2f}"
                f" {growth:>9.2f} {rss:>8.0f} {size:>10}"
            )
            if mode == "run --json":
                ok &= verdict(f"run --json RSS at N={n}", rss <= TARGET_RSS_MIB, f"{rss:.0f} MiB")
                if n >= 16384 and not math.isnan(growth):
                    ok &= verdict(
                        f"run --json t(N)/t(N/2) at N={n}",
                        growth <= TARGET_GROWTH,
                        f"{growth:.2f}",
                    )
                if n == sizes[-1]:
                    ok &= verdict(
                        f"run --json at N={n}",
                        seconds <= TARGET_RATIO * c_seconds,
                        f"{seconds:.2f} s vs C {c_seconds:.2f} s",
                    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
