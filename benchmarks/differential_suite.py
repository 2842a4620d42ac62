"""differential_suite: wall time of the differential tests, end to end.

    .venv/bin/python -m benchmarks.differential_suite

Runs `.venv/bin/python -m pytest -q tests/test_differential.py` as a
subprocess from the project root and reports its wall time and how many
scenarios (test items, one per generated scenario) it ran. Target: it
finishes, passing, within 5 minutes. If the host kernel cannot run the real
side, pytest skips the module: that is reported, and counts as a miss.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from benchmarks._common import PYTHON, ROOT, print_machine, verdict

TARGET_SECONDS = 300.0
COMMAND = [PYTHON, "-m", "pytest", "-q", "tests/test_differential.py"]


def main(argv: list[str] | None = None) -> int:
    print_machine()
    print("$ " + " ".join([".venv/bin/python", *COMMAND[1:]]))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            COMMAND,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TARGET_SECONDS * 2,
            check=False,
        )
    except subprocess.TimeoutExpired:
        verdict("differential suite", False, f"still running after {TARGET_SECONDS * 2:.0f} s")
        return 1
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    # pyproject's addopts adds a second -q, so pytest prints no summary line on
    # success: count the progress characters (. F E s x X) instead.
    progress = [re.match(r"^([.FEsxX]+)\s*\[\s*\d+%\]$", line) for line in lines]
    marks = "".join(m.group(1) for m in progress if m)
    counts = {
        kind: marks.count(ch)
        for ch, kind in (
            (".", "passed"),
            ("F", "failed"),
            ("E", "errors"),
            ("s", "skipped"),
            ("x", "xfailed"),
            ("X", "xpassed"),
        )
    }
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or (
        lines[-1] if lines else "(no output)"
    )
    scenarios = sum(n for kind, n in counts.items() if kind != "skipped")
    print(f"  pytest result : {summary}")
    print(f"  exit status   : {proc.returncode}")
    print(f"  wall time     : {wall:.1f} s")
    print(
        f"  scenarios run : {scenarios}  ({wall / max(scenarios, 1) * 1e3:.0f} ms each, "
        "simulator + real kernel)"
    )
    print()
    ok = proc.returncode == 0 and scenarios > 0
    if not ok:
        print(proc.stdout[-4000:])
        print(proc.stderr[-2000:])
    ok = verdict(
        "differential suite",
        ok and wall < TARGET_SECONDS,
        f"{wall:.1f} s for {scenarios} scenarios, exit {proc.returncode} "
        f"(target: passes within {TARGET_SECONDS:.0f} s)",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
