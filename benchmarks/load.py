"""Load test: every page kind at once, from a cold start, with wrk on loopback.

    PYTHONPATH=. .venv/bin/python benchmarks/load.py --connections 32 --seconds 60

Starts `python -m app` on 127.0.0.1 (a free port, a fresh data directory:
nothing rendered, nothing run; MREMAP_VIZ_PUBLIC_URL set to its address, as
a public deployment sets it), and waits until its warm-up (app/warmup.py:
the gallery's pages rendered into the page cache, bounded by WARM_PAGES)
says ready on /healthz, printing how long that took from the start. It makes
one short link per gallery scenario (POST /api/share, which runs it and
queues its pages for the warm-up, bounded by WARM_LINK_PAGES) and waits for
those too. With --no-wait it waits for neither: the load meets the warm-up.
Then it runs
one wrk process per page kind, all at the same time, splitting the
connections between them (Debian's `wrk` package): the gallery, full step
pages, htmx step fragments, `.txt` and `.json` twins, both SVGs, short-link
pages, and `/play` with a new source on every request (an uncached run each
time). Each kind cycles through every step of every gallery scenario; what
the warm-up has not rendered yet is rendered on its first visit (cold).

The rate limits are lifted for the run (MREMAP_VIZ_RUNS_PER_CLIENT,
..._SHARES_...: every request comes from 127.0.0.1): this measures what
the server can serve, not what one client may ask.

Prints each kind's wrk figures; exits 1 on any error (a socket error or an
answer >= 400), if a cached kind's p99 is over --p99-ms (50), or if the
uncached runs' p99 is over --uncached-p99-ms (UNCACHED_P99_MS).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks._common import served_app

ROOT = Path(__file__).resolve().parent.parent

UNCACHED_P99_MS = 2000.0
"""The bound for a new /play source's run under this load (a worker-process run)."""

LUA = r"""
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
local headers = {["Accept-Encoding"] = "gzip"%(extra)s}
local n = 0
request = function()
  i = i %% #paths + 1
  local path = paths[i]
  if path == "NEW" then
    n = n + 1
    path = "/play?source=" .. "munmap%%280%%2C%%20" .. n .. "%%29%%3B%%0A%%2F%%2F%(tag)s" .. math.random(1, 1000000000)
  end
  return wrk.format("GET", path, headers)
end
done = function(summary, latency, requests)
  io.write(string.format("requests %%d\n", summary.requests))
  io.write(string.format("non2xx %%d\n", summary.errors.status))
  io.write(string.format("socket_errors %%d\n",
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for _, p in pairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%%s_ms %%.2f\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("max_ms %%.2f\n", latency.max / 1000))
end
"""


@dataclass(frozen=True)
class Kind:
    """One page kind: its URLs, whether wrk sends HX-Request, whether it is cached."""

    name: str
    paths: list[str]
    htmx: bool = False
    cached: bool = True


def kinds(base: str, client: httpx.Client) -> list[Kind]:
    """Every page kind over every step of every gallery scenario (shares made here)."""
    steps: list[tuple[str, int]] = []
    shares: list[str] = []
    for entry in client.get(base + "/index.json").json():
        slug = entry["slug"]
        doc = client.get(f"{base}/scenarios/{slug}.json").json()
        last = doc["scenario"]["steps"][-1]["inner"][-1]["index"]
        steps += [(slug, n) for n in range(last + 1)]
        made = client.post(base + "/api/share", json={"source": entry["source"]})
        made.raise_for_status()
        shares += [f"{made.json()['url']}?step={n}" for n in range(last + 1)]
    page = [f"/scenarios/{slug}?step={n}" for slug, n in steps]
    return [
        Kind("gallery", ["/"]),
        Kind("step page", page),
        Kind("step fragment", page, htmx=True),
        Kind(".txt", [f"/scenarios/{slug}.txt?step={n}" for slug, n in steps]),
        Kind(".json", [f"/scenarios/{slug}.json?step={n}" for slug, n in steps]),
        Kind("map.svg", [f"/scenarios/{slug}/map.svg?step={n}" for slug, n in steps]),
        Kind("anon_vma.svg", [f"/scenarios/{slug}/anon_vma.svg?step={n}" for slug, n in steps]),
        Kind("short link", shares),
        Kind("/play new source", ["NEW"], cached=False),
    ]


def wait_ready(base: str, client: httpx.Client, started: float, what: str) -> None:
    """Poll /healthz until the warm-up is done; print what it did and when."""
    while (health := client.get(base + "/healthz").json())["status"] != "ready":
        time.sleep(0.25)
    warm = health["warmup"]
    print(
        f"{what}: ready {time.monotonic() - started:.1f} s after the server started; "
        f"warm-up at start {warm['seconds']} s, {warm['pages']} pages and {warm['links']} "
        f"links warmed, {warm['failed']} failed, {warm['dropped']} links dropped, "
        f"stopped by {warm['stopped'] or 'nothing'}; page cache "
        f"{health['caches']['pages']} pages, {health['caches']['page_bytes'] / 2**20:.1f} MiB"
    )


def start_wrk(
    wrk: str, base: str, kind: Kind, connections: int, seconds: int, tmp: Path, tag: int
) -> subprocess.Popen[str]:
    listing = tmp / f"paths{tag}.txt"
    listing.write_text("\n".join(kind.paths) + "\n")
    script = tmp / f"load{tag}.lua"
    extra = ', ["HX-Request"] = "true"' if kind.htmx else ""
    script.write_text(LUA % {"paths": listing, "extra": extra, "tag": tag})
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["--latency", "-s", str(script), base]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--p99-ms", type=float, default=50.0)
    parser.add_argument("--uncached-p99-ms", type=float, default=UNCACHED_P99_MS)
    parser.add_argument(
        "--only", nargs="+", metavar="KIND", help="only these kinds (by name, e.g. .txt)"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="start the load before the warm-up is done"
    )
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    no_limits = "1000000000/minute"
    started = time.monotonic()
    with served_app(
        warm=True,
        MREMAP_VIZ_RUNS_PER_CLIENT=no_limits,
        MREMAP_VIZ_SHARES_PER_CLIENT=no_limits,
    ) as base:
        with httpx.Client(timeout=30) as client:
            if not args.no_wait:
                wait_ready(base, client, started, "gallery")
            groups = [k for k in kinds(base, client) if not args.only or k.name in args.only]
            if not args.no_wait:
                wait_ready(base, client, started, "gallery and short links")
        per_kind = max(1, args.connections // len(groups))
        spare = args.connections - per_kind * len(groups)
        failed = False
        with tempfile.TemporaryDirectory() as tmp:
            running = []
            for tag, kind in enumerate(groups):
                connections = per_kind + (1 if tag < spare else 0)
                running.append(
                    (
                        kind,
                        connections,
                        start_wrk(wrk, base, kind, connections, args.seconds, Path(tmp), tag),
                    )
                )
            print(
                f"{len(groups)} kinds at once, {args.connections} connections, {args.seconds} s\n"
            )
            print("| kind | URLs | conns | req/s | p50 ms | p99 ms | max ms | errors | bound |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
            for kind, connections, proc in running:
                out, _ = proc.communicate()
                figures = dict(re.findall(r"^([\w.]+) ([\d.]+)$", out, re.MULTILINE))
                errors = int(figures.get("non2xx", 1)) + int(figures.get("socket_errors", 1))
                p99 = float(figures.get("p99_ms", "inf"))
                bound = args.p99_ms if kind.cached else args.uncached_p99_ms
                ok = errors == 0 and p99 <= bound
                failed |= not ok
                rate = float(figures.get("requests", 0)) / args.seconds
                paths = "new each" if not kind.cached else str(len(kind.paths))
                print(
                    f"| {kind.name} | {paths} | {connections} | {rate:.0f} | {figures.get('p50_ms')} "
                    f"| {p99} | {figures.get('max_ms')} | {errors} | p99 <= {bound:g} ms: {'PASS' if ok else 'FAIL'} |"
                )
                if not figures:
                    print(out)
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
