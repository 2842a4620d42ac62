"""engine_terabyte: a 1 TiB MAP_NORESERVE mapping, one page written, moved with MREMAP_FIXED.

    .venv/bin/python -m benchmarks.engine_terabyte [--profile] [--reps N]

The scenario is parsed once (engine.scenario.parse.parse); the timed part is
engine.sim.simulation.run_scenario() on the parsed scenario, median of N runs
(after one untimed warm-up run). The same scenario with a 1-page mapping is
the yardstick. Both runs must succeed and return the destination.

Targets: the 1 TiB run under 0.1 s, and at most 10x the 1-page run.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks._common import median, print_machine, profile, verdict

TARGET_SECONDS = 0.1
TARGET_RATIO = 10.0


def scenario(size: str) -> str:
    return (
        "char *dest = mmap(NULL, 4ULL << 40, PROT_NONE, "
        "MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);\n"
        f"char *p = mmap(NULL, {size}, PROT_READ | PROT_WRITE, "
        "MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);\n"
        "p[0] = 'x';\n"
        f"char *q = mremap(p, {size}, {size}, MREMAP_MAYMOVE | MREMAP_FIXED, dest);\n"
    )


def timed(source: str, reps: int) -> tuple[float, list[float], int]:
    from engine.scenario.parse import parse
    from engine.sim.simulation import run_scenario

    parsed = parse(source)
    times = []
    steps = 0
    for i in range(reps + 1):
        start = time.perf_counter()
        run = run_scenario(parsed)
        elapsed = time.perf_counter() - start
        outcomes = [s.outcome.result for s in run.statements]
        if run.error or len(outcomes) != 4 or outcomes[-1].value != outcomes[0].value:
            raise SystemExit(f"the run did not move the mapping: {run.error} {outcomes}")
        steps = len(run.steps)
        if i:  # the first run is a warm-up
            times.append(elapsed)
    return median(times), times, steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="print the 1 TiB profile anyway")
    parser.add_argument("--reps", type=int, default=7, help="timed runs each (median)")
    args = parser.parse_args(argv)

    print_machine()
    tib, tib_runs, tib_steps = timed(scenario("1ULL << 40"), args.reps)
    page, page_runs, page_steps = timed(scenario("page_size"), args.reps)
    ratio = tib / page
    print(f"\nrun_scenario() excluding parsing, median of {args.reps} (after 1 warm-up)")
    print(
        f"  1 TiB mapping, 1 page written: {tib * 1e3:8.3f} ms  ({tib_steps} steps; runs ms: "
        + " ".join(f"{t * 1e3:.3f}" for t in tib_runs)
        + ")"
    )
    print(
        f"  1-page mapping              : {page * 1e3:8.3f} ms  ({page_steps} steps; runs ms: "
        + " ".join(f"{t * 1e3:.3f}" for t in page_runs)
        + ")"
    )
    print()
    ok = verdict(
        "1 TiB move",
        tib < TARGET_SECONDS,
        f"{tib * 1e3:.3f} ms (target < {TARGET_SECONDS * 1e3:.0f} ms)",
    )
    ok &= verdict(
        "1 TiB vs 1 page",
        ratio <= TARGET_RATIO,
        f"{ratio:.2f}x the 1-page run (target <= {TARGET_RATIO:.0f}x)",
    )
    if not ok or args.profile:
        from engine.scenario.parse import parse
        from engine.sim.simulation import run_scenario

        parsed = parse(scenario("1ULL << 40"))
        print("\ncProfile of one 1 TiB run:")
        print(profile(lambda: run_scenario(parsed)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
