"""page_sweep: many seeds of every scenario family, compared page by page.

    .venv/bin/python -m benchmarks.page_sweep --seeds 5000

Runs `--seeds` generated scenarios (tests/support/scenario_gen.py), spread over the
families round-robin from seed `--first` on, each on the simulated kernel
and on this machine's (engine.verify.check), comparing results, maps,
resident pages and every page after every statement. It prints how many
disagree by family and kind, and for each kind of finding (crash, pages,
maps, ...) in each family the smallest scenario that shows it: the first
such seed shrunk by dropping statements. The seeds the tests run
(SEEDS[family]) are counted apart from the rest, which the tests never saw.
Exit 1 if anything disagrees. Needs the real kernel (Linux, a C compiler;
root for the page fields beyond pagemap's bits).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from benchmarks._common import print_machine
from engine.verify.check import Verdict, check_source, smallest
from tests.support.scenario_gen import FAMILIES, SEEDS, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="page_sweep")
    parser.add_argument("--seeds", type=int, default=5000, help="scenarios in all")
    parser.add_argument("--first", type=int, default=0, help="first seed of each family")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated")
    parser.add_argument("--no-shrink", action="store_true", help="print findings unshrunk")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families: {', '.join(unknown)}")
    print_machine()
    print(f"$ python -m benchmarks.page_sweep --seeds {args.seeds} --first {args.first}")
    start = time.perf_counter()
    ran: Counter[str] = Counter()
    tested: Counter[str] = Counter()
    bad: Counter[tuple[str, str]] = Counter()
    bad_tested: Counter[str] = Counter()
    first_seen: dict[tuple[str, str], tuple[int, str, Verdict]] = {}
    for i in range(args.seeds):
        family = families[i % len(families)]
        seed = args.first + i // len(families)
        source = generate(seed, family)
        verdict = check_source(source)
        ran[family] += 1
        in_tests = seed < SEEDS[family]
        tested[family] += in_tests
        if not verdict.agrees:
            bad[family, verdict.kind] += 1
            bad_tested[family] += in_tests
            first_seen.setdefault((family, verdict.kind), (seed, source, verdict))
    wall = time.perf_counter() - start
    total_bad = sum(bad.values())
    print(
        f"  scenarios : {sum(ran.values())} in {wall:.0f} s ({wall / max(1, sum(ran.values())) * 1e3:.0f} ms each)"
    )
    print(f"  disagree  : {total_bad}")
    print()
    print(f"  {'family':<15}{'seeds':>7}{'in tests':>10}{'disagree':>10}  kinds")
    for family in families:
        kinds = ", ".join(f"{k} {n}" for (f, k), n in sorted(bad.items()) if f == family)
        n_bad = sum(n for (f, _), n in bad.items() if f == family)
        print(
            f"  {family:<15}{ran[family]:>7}{tested[family]:>10}{n_bad:>10}"
            f"  {kinds or '-'}{f' ({bad_tested[family]} in tests)' if bad_tested[family] else ''}"
        )
    for (family, kind), (seed, source, verdict) in sorted(first_seen.items()):
        print()
        print(f"== {family} #{seed}: {kind}, {bad[family, kind]} seed(s)")
        if not args.no_shrink:
            source = smallest(source, verdict)
            verdict = check_source(source)
        print(source.rstrip())
        print(str(verdict))
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
