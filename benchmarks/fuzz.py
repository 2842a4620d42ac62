"""Fuzz the scenario parser and the engine at scale, and the API from its OpenAPI schema.

    PYTHONPATH=. .venv/bin/python benchmarks/fuzz.py --count 100000 --jobs 2

Runs tests/support/fuzz.py's strategies (grammar-generated scenarios, mutated
gallery scenarios, random text) `--count` times in all, spread over `--jobs`
processes, each run bounded by tests.support.fuzz.FUZZ_LIMITS and the whole
job by `--seconds`. Any exception but ScenarioError and LimitExceeded is a
crash: each distinct one (by exception type and the frame that raised it)
is printed with its smallest scenario and its traceback. Then schemathesis
calls every operation of the app's OpenAPI schema `--api-examples` times
(in-process ASGI, scenarios in worker processes as served) and counts 5xx.
Exits 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _fuzz_chunk(args: tuple[int, int, float]) -> tuple[int, dict[str, tuple[str, str]], float]:
    """Run `count` examples with hypothesis seed `seed`; (examples run, crashes, seconds)."""
    count, seed_value, deadline = args
    from hypothesis import HealthCheck, Phase, given, seed, settings

    from tests.support.fuzz import any_scenario, check

    crashes: dict[str, tuple[str, str]] = {}
    done = 0
    start = time.perf_counter()

    class Stop(Exception):
        pass

    @seed(seed_value)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(any_scenario())
    def body(source: str) -> None:
        nonlocal done
        if time.time() > deadline:
            raise Stop
        done += 1
        try:
            check(source)
        except Exception as err:
            frame = traceback.extract_tb(err.__traceback__)[-1]
            key = f"{type(err).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            if key not in crashes or len(source) < len(crashes[key][0]):
                crashes[key] = (source, traceback.format_exc())

    with contextlib.suppress(Stop):
        body()
    return done, crashes, time.perf_counter() - start


def fuzz_engine(count: int, jobs: int, seconds: float) -> tuple[int, dict[str, tuple[str, str]]]:
    deadline = time.time() + seconds
    chunk = 2_000
    chunks = [(min(chunk, count - i), 1000 + i // chunk, deadline) for i in range(0, count, chunk)]
    total = 0
    crashes: dict[str, tuple[str, str]] = {}
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        for done, found, _ in pool.imap_unordered(_fuzz_chunk, chunks):
            total += done
            for key, (source, tb) in found.items():
                if key not in crashes or len(source) < len(crashes[key][0]):
                    crashes[key] = (source, tb)
            print(f"  {total} scenarios, {len(crashes)} distinct crashes", flush=True)
    return total, crashes


def fuzz_api(examples: int) -> tuple[int, list[str]]:
    import os
    import tempfile

    os.environ.setdefault("MREMAP_VIZ_DATA", tempfile.mkdtemp(prefix="mremap-viz-fuzz-"))
    from app.main import create_app
    from tests.support.fuzz import api_operations, exercise

    calls = 0
    failures = []
    for operation in api_operations(create_app()):
        try:
            calls += exercise(operation, examples)
        except Exception as err:  # a 5xx or a schema violation: report and go on
            failures.append(f"{operation.label}: {type(err).__name__}: {err}"[:4000])  # type: ignore[attr-defined]
    return calls, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="scenarios to run (100000)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (2)")
    parser.add_argument("--seconds", type=float, default=3600, help="time bound (3600)")
    parser.add_argument("--api-examples", type=int, default=200, help="per operation (200)")
    args = parser.parse_args()

    start = time.perf_counter()
    total, crashes = fuzz_engine(args.count, args.jobs, args.seconds)
    engine_time = time.perf_counter() - start
    print(f"engine: {total} scenarios in {engine_time:.0f} s, {len(crashes)} distinct crashes")
    for key, (source, tb) in sorted(crashes.items()):
        print(f"\n=== crash: {key}\n--- scenario:\n{source}\n--- traceback:\n{tb}")

    start = time.perf_counter()
    calls, failures = (0, []) if args.api_examples <= 0 else fuzz_api(args.api_examples)
    print(
        f"api: {calls} requests in {time.perf_counter() - start:.0f} s, {len(failures)} failing operations"
    )
    for failure in failures:
        print(f"\n=== api failure: {failure}")
    return 1 if crashes or failures else 0


if __name__ == "__main__":
    sys.exit(main())
