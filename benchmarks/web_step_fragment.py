"""web_step_fragment: server time of htmx step fragments, and the weight of the first page.

    .venv/bin/python -m benchmarks.web_step_fragment [--profile] [--passes N]

The app runs in-process (app.main.create_app(), MREMAP_VIZ_DATA in a temporary
directory) behind httpx.AsyncClient + ASGITransport. Server time is taken by
an ASGI wrapper around the app: from the request entering the app to the app
handing over the last body chunk (FastAPI's sync handlers run in its thread
pool, as they do under uvicorn). Requests carry `Accept-Encoding: gzip,
deflate, br, zstd` as a browser would, so the app's GZipMiddleware runs.

1. For each gallery scenario (engine.gallery.gallery()): one request warms the
   run cache, the `.json` twin gives the step count N (untimed), then every
   inner step 0..N-1 is requested as an htmx fragment
   (`HX-Request: true`) at `/scenarios/<slug>?step=N`. Reported: p50 and p99
   per scenario and overall (nearest rank). Target: overall p50 <= 10 ms.
2. The first page: GET `/` and every `<script src>` and `<link rel=stylesheet>`
   it references (parsed with selectolax, as tests/test_app.py parses pages).
   Reported per resource: the bytes on the wire (body as transferred, after
   the app's gzip; headers not counted) and the raw (decoded) bytes.
   Target: the transfer size (gzip as served) totals <= 150 KB (150,000 bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from benchmarks._common import percentile, print_machine, profile, verdict

TARGET_P50_MS = 10.0
TARGET_FIRST_PAGE_BYTES = 150_000
BROWSER = {"Accept-Encoding": "gzip, deflate, br, zstd", "Accept": "text/html,*/*"}
HTMX = BROWSER | {"HX-Request": "true", "HX-Current-URL": "http://testserver/"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class ServerTimer:
    """ASGI wrapper: the time from entering the app to its last body message."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.last: float = 0.0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last = time.perf_counter() - start
            await send(message)

        await self.app(scope, receive, timed_send)


def make_app() -> Any:
    os.environ.setdefault("MREMAP_VIZ_DATA", tempfile.mkdtemp(prefix="mremap-viz-bench-"))
    from app.main import create_app

    return create_app()


async def step_fragments(app: Any, timer: ServerTimer, passes: int) -> dict[str, list[float]]:
    import httpx

    from engine.gallery import gallery

    per_scenario: dict[str, list[float]] = {}
    transport = httpx.ASGITransport(app=timer)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for entry in gallery():
            url = f"/scenarios/{entry.slug}"
            warm = await client.get(url, headers=HTMX)  # runs the scenario into the cache
            warm.raise_for_status()
            # the step count as the app serves it (the .json twin, as tests/test_app.py reads it)
            twin = (await client.get(f"{url}.json")).json()
            steps = twin["scenario"]["steps"][-1]["inner"][-1]["index"] + 1
            times = []
            for _ in range(passes):
                for n in range(steps):
                    response = await client.get(f"{url}?step={n}", headers=HTMX)
                    if response.status_code != 200 or "<html" in response.text:
                        raise SystemExit(f"{url}?step={n}: {response.status_code}, not a fragment")
                    times.append(timer.last * 1e3)
            per_scenario[entry.slug] = times
    return per_scenario


async def first_page(timer: ServerTimer) -> list[tuple[str, str, int, int, int]]:
    """(path, content-encoding, transfer bytes, raw bytes, gzip -6 of raw) per resource."""
    import httpx
    from selectolax.lexbor import LexborHTMLParser

    rows = []
    transport = httpx.ASGITransport(app=timer)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def fetch(path: str) -> httpx.Response:
            response = await client.get(path, headers=BROWSER)
            response.raise_for_status()
            rows.append(
                (
                    path,
                    response.headers.get("content-encoding", "identity"),
                    response.num_bytes_downloaded,
                    len(response.content),
                    len(gzip.compress(response.content, 6)),
                )
            )
            return response

        page = await fetch("/")
        doc = LexborHTMLParser(page.text)
        refs = [n.attributes.get("src") for n in doc.css("script[src]")]
        refs += [
            n.attributes.get("href")
            for n in doc.css("link[href]")
            if "stylesheet" in (n.attributes.get("rel") or "").split()
        ]
        for ref in dict.fromkeys(r for r in refs if r):
            await fetch(ref)
    return rows


def inline_threadpool() -> None:
    """For the profile only: run FastAPI's sync handlers inline, so cProfile sees them."""
    import fastapi.dependencies.utils
    import fastapi.routing

    async def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    setattr(fastapi.routing, "run_in_threadpool", inline)  # noqa: B010
    setattr(fastapi.dependencies.utils, "run_in_threadpool", inline)  # noqa: B010


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="print the profile anyway")
    parser.add_argument("--passes", type=int, default=1, help="passes over every step")
    args = parser.parse_args(argv)

    print_machine()
    app = make_app()
    timer = ServerTimer(app)
    per_scenario = asyncio.run(step_fragments(app, timer, args.passes))

    everything = [t for times in per_scenario.values() for t in times]
    print(f"\nstep fragments (HX-Request: true), server time in ms, {args.passes} pass(es)")
    print(f"  {'scenario':<30} {'requests':>8} {'p50':>7} {'p99':>7} {'max':>7}")
    for slug, times in per_scenario.items():
        print(
            f"  {slug:<30} {len(times):>8} {percentile(times, 50):>7.2f} "
            f"{percentile(times, 99):>7.2f} {max(times):>7.2f}"
        )
    p50, p99 = percentile(everything, 50), percentile(everything, 99)
    print(f"  {'OVERALL':<30} {len(everything):>8} {p50:>7.2f} {p99:>7.2f} {max(everything):>7.2f}")

    rows = asyncio.run(first_page(ServerTimer(app)))
    print("\nfirst page: GET / and the scripts and stylesheets it references")
    print(f"  {'resource':<36} {'encoding':>9} {'transfer B':>11} {'raw B':>9} {'gzip -6 B':>10}")
    for path, enc, wire, raw, gz in rows:
        print(f"  {path:<36} {enc:>9} {wire:>11,} {raw:>9,} {gz:>10,}")
    wire_total = sum(r[2] for r in rows)
    raw_total = sum(r[3] for r in rows)
    gz_total = sum(r[4] for r in rows)
    print(f"  {'TOTAL':<36} {'':>9} {wire_total:>11,} {raw_total:>9,} {gz_total:>10,}")

    print()
    ok = verdict(
        "step fragment p50",
        p50 <= TARGET_P50_MS,
        f"overall p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(everything)} requests "
        f"(target p50 <= {TARGET_P50_MS:.0f} ms)",
    )
    ok &= verdict(
        "first page weight",
        wire_total <= TARGET_FIRST_PAGE_BYTES,
        f"{wire_total:,} B transferred (gzip as served), {raw_total:,} B raw "
        f"(target: transfer <= {TARGET_FIRST_PAGE_BYTES:,} B)",
    )
    if not ok or args.profile:
        inline_threadpool()
        profiled_app = make_app()
        print("\ncProfile of one pass over every step fragment (sync handlers run inline):")
        print(
            profile(lambda: asyncio.run(step_fragments(profiled_app, ServerTimer(profiled_app), 1)))
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
