"""Run every benchmark, one after another (never in parallel), and summarise.

    .venv/bin/python -m benchmarks.run_all [NAME ...]

Each benchmark runs as `python -m benchmarks.NAME` in its own process, its
output passed through. Exits 1 if any benchmark missed its target.
"""

from __future__ import annotations

import subprocess
import sys
import time

from benchmarks._common import PYTHON, ROOT

BENCHMARKS = ("engine_fault_move", "engine_terabyte", "differential_suite", "web_step_fragment")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    results = []
    for name in names:
        print(f"\n===== benchmarks.{name} =====", flush=True)
        start = time.perf_counter()
        code = subprocess.run(
            [PYTHON, "-m", f"benchmarks.{name}"], cwd=ROOT, check=False
        ).returncode
        results.append((name, code, time.perf_counter() - start))
    print("\n===== summary =====")
    for name, code, seconds in results:
        print(f"  {'PASS' if code == 0 else 'FAIL'}  {name:<22} ({seconds:.0f} s, exit {code})")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
