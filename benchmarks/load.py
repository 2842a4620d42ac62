"""Load test: wrk against the served app on loopback, step fragments and shares.

    PYTHONPATH=. .venv/bin/python benchmarks/load.py --connections 32 --seconds 60

Starts `python -m app` on 127.0.0.1 (a free port, a fresh data directory),
warms the run cache with every gallery scenario (and shares each one when
POST /api/share exists), then runs wrk (Debian's `wrk` package) with a Lua
script that cycles through htmx step-fragment requests (HX-Request: true)
of every step of every gallery scenario (each rendered once beforehand,
unless --cold, so the page cache serves them as it does a stepping
visitor), then the shares' step pages. Prints
wrk's latency distribution, requests per second, and the error count
(socket errors and non-2xx answers); exits 1 if there were any errors, or
if the fragment p99 is over --p99-ms (50).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks._common import served_app

ROOT = Path(__file__).resolve().parent.parent

LUA = r"""
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
request = function()
  i = i %% #paths + 1
  local path = paths[i]
  if path:sub(1, 3) == "/s/" then
    return wrk.format("GET", path, {["Accept-Encoding"] = "gzip"})
  end
  return wrk.format("GET", path, {["HX-Request"] = "true", ["Accept-Encoding"] = "gzip"})
end
local errors = 0
response = function(status, headers, body)
  if status >= 400 then errors = errors + 1 end
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


def urls(base: str, client: httpx.Client) -> list[str]:
    """Every step fragment of every gallery scenario, and each scenario's share."""
    paths = []
    for entry in client.get(base + "/index.json").json():
        slug = entry["slug"]
        doc = client.get(f"{base}/scenarios/{slug}.json").json()
        last = doc["scenario"]["steps"][-1]["inner"][-1]["index"]
        paths += [f"/scenarios/{slug}?step={n}" for n in range(last + 1)]
        shared = client.post(base + "/api/share", json={"source": entry["source"]})
        if shared.status_code == 200:
            url = shared.json()["url"]
            client.get(base + url).raise_for_status()
            paths += [f"{url}?step={n}" for n in range(0, last + 1, 5)]
    return paths


def run_wrk(wrk: str, base: str, paths: list[str], args: argparse.Namespace) -> dict[str, str]:
    """wrk over `paths` in turn; the figures the Lua script's done() prints."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "paths.txt"
        listing.write_text("\n".join(paths) + "\n")
        script = Path(tmp) / "load.lua"
        script.write_text(LUA % {"paths": listing})
        command = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s"]
        command += ["--timeout", "10s", "--latency", "-s", str(script), base]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    print(result.stdout)
    return dict(re.findall(r"^([\w.]+) ([\d.]+)$", result.stdout, re.MULTILINE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--p99-ms", type=float, default=50.0)
    parser.add_argument("--cold", action="store_true", help="no warm-up of the page cache")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    with served_app() as base:
        with httpx.Client(timeout=30) as client:
            paths = urls(base, client)
            if not args.cold:  # render each fragment once: the page cache serves the rest
                start = time.perf_counter()
                for path in paths:
                    if not path.startswith("/s/"):
                        client.get(
                            base + path, headers={"HX-Request": "true", "Accept-Encoding": "gzip"}
                        )
                took = time.perf_counter() - start
                print(f"warm-up: {len(paths)} URLs rendered once in {took:.1f} s")
        fragments = [p for p in paths if not p.startswith("/s/")]
        shares = [p for p in paths if p.startswith("/s/")]
        phases = [("step fragments", fragments)] + ([("share pages", shares)] if shares else [])
        failed = False
        for name, group in phases:
            print(f"== {name}: {len(group)} URLs, {args.connections} connections, {args.seconds} s")
            figures = run_wrk(wrk, base, group, args)
            errors = int(figures.get("non2xx", 1)) + int(figures.get("socket_errors", 1))
            p50, p99 = figures.get("p50_ms"), float(figures.get("p99_ms", "inf"))
            rate = float(figures.get("requests", 0)) / args.seconds
            print(f"== {name}: {rate:.0f} req/s, p50 {p50} ms, p99 {p99} ms, errors {errors}\n")
            failed |= errors > 0 or (name == "step fragments" and p99 > args.p99_ms)
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
