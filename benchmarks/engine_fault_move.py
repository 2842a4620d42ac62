"""engine_fault_move: fault in 1 GiB (262,144 pages) and move it with MREMAP_FIXED.

    .venv/bin/python -m benchmarks.engine_fault_move [--profile] [--relocate-reps N]

Each measurement is one `engine.sim.simulation.run_source()` call in a fresh
subprocess (so its peak RSS, ru_maxrss, is the run's own). The scenario
reserves a PROT_NONE destination, maps SIZE read-write, memsets all of it,
then `mremap(p, SIZE, SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, dest)`; the run
must succeed and return `dest`.

Targets:
- 1 GiB run: median of 3 under 2 s;
- linear cost: per-page time at 1 GiB at most 2x the per-page time at 64 MiB.
Reported only: the same with MREMAP_RELOCATE_ANON (per-folio walk), and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from benchmarks._common import median, print_machine, profile, run_child, verdict

PAGE = 4096
SIZES = {"64 MiB": "64 << 20", "256 MiB": "256 << 20", "1 GiB": "1 << 30"}
TARGET_SECONDS = 2.0
TARGET_LINEARITY = 2.0


def scenario(size: str, relocate: bool) -> str:
    flags = "MREMAP_MAYMOVE | MREMAP_FIXED" + (" | MREMAP_RELOCATE_ANON" if relocate else "")
    return (
        f"char *dest = mmap(NULL, {size}, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        f"char *p = mmap(NULL, {size}, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        f"memset(p, 'x', {size});\n"
        f"char *q = mremap(p, {size}, {size}, {flags}, dest);\n"
    )


def child(size: str, relocate: bool) -> None:
    """One timed run; prints a JSON line with seconds and RSS."""
    from benchmarks._common import maxrss_mib
    from engine.sim.simulation import run_source

    source = scenario(size, relocate)
    rss_before = maxrss_mib()
    start = time.perf_counter()
    run = run_source(source)
    seconds = time.perf_counter() - start
    rss_peak = maxrss_mib()
    outcomes = [s.outcome.result for s in run.statements]
    dest = outcomes[0].value if outcomes else None
    ok = (
        run.error is None
        and len(outcomes) == 4
        and outcomes[-1].result == "ok"
        and outcomes[-1].value == dest
    )
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before_mib": rss_before,
                "rss_peak_mib": rss_peak,
                "steps": len(run.steps),
                "ok": ok,
                "error": run.error,
                "outcome": repr(outcomes[-1]) if outcomes else None,
            }
        )
    )


def measure(size_name: str, relocate: bool, reps: int) -> dict[str, object]:
    runs = [
        run_child("benchmarks.engine_fault_move", SIZES[size_name], str(int(relocate)))
        for _ in range(reps)
    ]
    for r in runs:
        if not r["ok"]:
            raise SystemExit(f"run did not move the mapping: {r}")
    pages = eval(SIZES[size_name]) // PAGE  # noqa: S307 - our own constant
    t = median([float(r["seconds"]) for r in runs])  # type: ignore[arg-type]
    return {
        "size": size_name,
        "pages": pages,
        "times": [float(r["seconds"]) for r in runs],  # type: ignore[arg-type]
        "median": t,
        "us_per_page": t / pages * 1e6,
        "rss_peak_mib": max(float(r["rss_peak_mib"]) for r in runs),  # type: ignore[arg-type]
        "rss_before_mib": min(float(r["rss_before_mib"]) for r in runs),  # type: ignore[arg-type]
        "steps": runs[0]["steps"],
    }


def table(title: str, rows: list[dict[str, object]]) -> None:
    print(f"\n{title}")
    print(
        f"  {'size':>8} {'pages':>8} {'median s':>9} {'runs (s)':>24} {'us/page':>8} "
        f"{'peak RSS MiB':>13} {'(RSS before run)':>16} {'steps':>6}"
    )
    for r in rows:
        runs = " ".join(f"{t:.3f}" for t in r["times"])  # type: ignore[attr-defined]
        print(
            f"  {r['size']:>8} {r['pages']:>8} {r['median']:>9.3f} {runs:>24} "
            f"{r['us_per_page']:>8.2f} {r['rss_peak_mib']:>13.0f} {r['rss_before_mib']:>16.0f} "
            f"{r['steps']:>6}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("SIZE", "RELOCATE"), help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help="print the 1 GiB profile anyway")
    parser.add_argument("--reps", type=int, default=3, help="runs per size (median)")
    parser.add_argument(
        "--relocate-reps",
        type=int,
        default=1,
        help="runs per size with MREMAP_RELOCATE_ANON (report only)",
    )
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1] == "1")
        return 0

    print_machine()
    plain = [measure(name, False, args.reps) for name in SIZES]
    table(
        f"MREMAP_MAYMOVE | MREMAP_FIXED (median of {args.reps}, one fresh process per run)", plain
    )
    relocate = [measure(name, True, args.relocate_reps) for name in SIZES]
    table(f"... | MREMAP_RELOCATE_ANON (report only, median of {args.relocate_reps})", relocate)

    big, small = plain[-1], plain[0]
    ratio = float(big["us_per_page"]) / float(small["us_per_page"])  # type: ignore[arg-type]
    print()
    ok = verdict(
        "1 GiB fault + move",
        float(big["median"]) < TARGET_SECONDS,  # type: ignore[arg-type]
        f"median {big['median']:.3f} s (target < {TARGET_SECONDS} s)",
    )
    ok &= verdict(
        "linear in populated pages",
        ratio <= TARGET_LINEARITY,
        f"1 GiB per-page / 64 MiB per-page = {ratio:.2f} (target <= {TARGET_LINEARITY})",
    )
    print(
        f"[INFO] peak RSS of the 1 GiB run: {big['rss_peak_mib']:.0f} MiB "
        f"(process before the run: {big['rss_before_mib']:.0f} MiB); with RELOCATE_ANON: "
        f"{relocate[-1]['rss_peak_mib']:.0f} MiB"
    )
    if not ok or args.profile:
        from engine.sim.simulation import run_source

        print("\ncProfile of one 1 GiB run (MREMAP_FIXED):")
        print(profile(lambda: run_source(scenario(SIZES["1 GiB"], False))))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
