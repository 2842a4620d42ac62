"""Shared helpers for the benchmarks: machine description, statistics, profiles.

Each benchmark is a plain script (`.venv/bin/python -m benchmarks.NAME`) that
prints its figures and exits 1 when a target is missed. On a miss it prints a
cProfile of the measured work (top 15 functions); `--profile` prints it anyway.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def machine() -> dict[str, str]:
    """nproc, free -h, uname -r, CPU model, Python version, date."""

    def sh(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "?"

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": sh("nproc"),
        "free -h": sh("free", "-h"),
        "uname -r": sh("uname", "-r"),
        "cpu": cpu,
        "python": platform.python_version(),
    }


def print_machine() -> None:
    info = machine()
    print(
        f"# {info['date']}  nproc={info['nproc']}  kernel={info['uname -r']}  "
        f"python={info['python']}  cpu={info['cpu']}"
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), nearest-rank on the sorted values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def maxrss_mib() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile(work: Callable[[], object], top: int = 15, sort: str = "tottime") -> str:
    """cProfile of work(): the top functions by own time, and by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        work()
    finally:
        prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    out.write(f"\n--- the same, by cumulative time (top {top}) ---\n")
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def run_child(module: str, *args: str) -> dict[str, object]:
    """Run `python -m module --child args...` in a fresh process; it prints one JSON line."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [PYTHON, "-m", module, "--child", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {module} {args} failed:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def verdict(name: str, ok: bool, detail: str) -> bool:
    print(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}")
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served_app(*, warm: bool = False, **environ: str) -> Iterator[str]:
    """`python -m app` on 127.0.0.1 (a free port, a fresh data directory, and
    `environ`), its base URL once it answers, while the block runs; stopped
    afterwards. No warm-up (app/warmup.py) unless `warm`; then it warms as
    a public deployment would, MREMAP_VIZ_PUBLIC_URL naming its base URL."""
    port = free_port()
    data = tempfile.mkdtemp(prefix="mremap-viz-bench-")
    env = {**os.environ, "MREMAP_VIZ_DATA": data, "PYTHONPATH": str(ROOT), **environ}
    env.setdefault("MREMAP_VIZ_WARM_PAGES", "0")
    if warm:
        env.pop("MREMAP_VIZ_WARM_PAGES")
        env["MREMAP_VIZ_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [PYTHON, "-m", "app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/index.json")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)
