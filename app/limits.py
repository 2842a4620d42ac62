"""Every limit the web service enforces, in one place.

The service is public: anyone can post a scenario. Each limit below keeps one
request from costing unbounded time or memory, and each is checked before
the work it bounds is done. Error messages name the constant, so a user can
find the limit they hit here.

The scenario language's own limits (engine/scenario/limits.py) and the
engine's per-run Limits (engine/limits.py) are re-exported here, so this file
lists them all; the web runs scenarios under WEB_LIMITS, smaller than the
command line's defaults.
"""

from __future__ import annotations

import os

from engine.scenario.limits import (
    MAX_EXPRESSION_DEPTH,
    MAX_PROCESSES,
    MAX_SOURCE_BYTES,
    MAX_STATEMENTS,
    MAX_U64,
)
from engine.sim.limits import LimitExceeded, Limits

__all__ = [
    "MAX_STORE_BYTES",
    "MAX_STORE_ROWS",
    "RUNS_PER_CLIENT",
    "SHARES_PER_CLIENT",
    "STORE_TIMEOUT_SECONDS",
    "ASSET_MAX_AGE_SECONDS",
    "CLI_LIMITS",
    "MAX_API_DETAIL_REFS",
    "LimitExceeded",
    "Limits",
    "MAX_BODY_BYTES",
    "MAX_EXPRESSION_DEPTH",
    "MAX_PROCESSES",
    "MAX_QUEUE_SECONDS",
    "MAX_QUEUED_RUNS",
    "MAX_RUN_CPU_SECONDS",
    "MAX_RUN_MEMORY_BYTES",
    "MAX_RUN_WALL_SECONDS",
    "MAX_RUN_CACHE_BYTES",
    "MAX_DERIVED_VIEWS",
    "MAX_PAGE_CACHE_BYTES",
    "MAX_PAGE_CACHE_ENTRY_BYTES",
    "WARM_PAGES",
    "WARM_LINK_PAGES",
    "WARM_QUEUED_LINKS",
    "MAX_SOURCE",
    "MAX_SOURCE_BYTES",
    "MAX_STATEMENTS",
    "MAX_TEST_NAME",
    "MAX_TOKEN_CHARS",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_SHARED_SOURCE_BYTES",
    "MAX_SHARE_BODY_BYTES",
    "MIN_ID_LENGTH",
    "MAX_TRACE_BYTES",
    "MAX_U64",
    "RUN_NICENESS",
    "RUN_WORKERS",
    "WEB_LIMITS",
]


def _operator(name: str, default: str) -> str:
    """A limit an operator may set in the environment as MREMAP_VIZ_<name>."""
    return os.environ.get(f"MREMAP_VIZ_{name}", default)


# --- the request ---------------------------------------------------------------

# Largest request body of any route, in bytes, checked against Content-Length
# and counted while a body streams in (app/security.py): larger is a 413
# before the app reads it. The largest body a route takes is a share's
# (MAX_SHARE_BODY_BYTES below); a route may check a smaller one itself.
MAX_BODY_BYTES = 8 * MAX_SOURCE_BYTES

# Longest scenario the web accepts in a URL or a JSON field, in characters
# (the `source` of POST /api/run and of /play?source=...). Whole selftest
# files are pasted with POST /play (a form, up to MAX_SHARED_SOURCE_BYTES).
# The parser also stops at MAX_SOURCE_BYTES UTF-8 bytes.
MAX_SOURCE = 20_000

# Longest test name a URL may ask for (`&test=merge.NAME`).
MAX_TEST_NAME = 200

# --- one run of the engine ---------------------------------------------------------

# The command line's defaults, for comparison.
CLI_LIMITS = Limits()

# What one scenario run may cost on the web: inner steps across the whole
# scenario, page-table entries in one process (a 256 MiB populated range:
# the 16,384-page fault-and-move case of benchmarks/whole_fault_move.py fits),
# processes alive at once. A run that passes one stops there, and the page
# shows the steps before it with the limit's name.
WEB_LIMITS = Limits(max_steps=5_000, max_populated_pages=65_536, max_processes=MAX_PROCESSES)

# A run happens in a worker process (app/guard.py) under these bounds:
# CPU seconds (RLIMIT_CPU, per run), wall-clock seconds before the worker is
# killed, and the worker's address space (RLIMIT_AS).
MAX_RUN_CPU_SECONDS = 5
MAX_RUN_WALL_SECONDS = 10.0
MAX_RUN_MEMORY_BYTES = 2 * 1024 * 1024 * 1024

# The worker's niceness (setpriority): the server's cached pages come first.
RUN_NICENESS = 10

# The run's trace (every inner step's snapshot) as sent back from the worker,
# pickled: a larger one is refused rather than cached.
MAX_TRACE_BYTES = 16 * 1024 * 1024

# POST /api/run answers what each step created, changed and freed as runs
# of ids; with "detail": true, object by object, for a run that touches at
# most this many objects in all (a larger one is a 422 naming this limit).
MAX_API_DETAIL_REFS = 100_000

# Worker processes running scenarios at once; how many more runs may wait
# for one (beyond that a request is answered 503 at once), and how long one
# waits before it is answered 503.
RUN_WORKERS = 2
MAX_QUEUED_RUNS = 8
MAX_QUEUE_SECONDS = 15.0

# The run cache (app/runs.py) keeps at most this many bytes of traces
# (measured as MAX_TRACE_BYTES measures them), besides its count of runs.
MAX_RUN_CACHE_BYTES = 256 * 1024 * 1024

# Values derived from a run (app/runs.py RunCache.derived): a step's panel
# (StepView, at most FOLIO_ROW_CAP rows and MAX_COLUMNS columns drawn), a
# run's JSON document. Enough for the twins of a step rendered one after
# another (as the warm-up renders them) and a few visitors stepping at once;
# few on purpose: each panel is hundreds of objects the cyclic GC walks, and
# a cache of 256 of them, churned by cold pages, made its full collections
# pause every request for 100-200 ms under the load benchmark.
MAX_DERIVED_VIEWS = 32

# The page cache (app/pagecache.py) keeps rendered step pages and fragments,
# up to this many bytes in all, none larger than the second. The gallery's
# warm-up takes 31 MiB of it (gzip-encoded; 26 scenarios), a short link to
# each gallery scenario as much again: the rest is for visitors' pages.
MAX_PAGE_CACHE_BYTES = 128 * 1024 * 1024
MAX_PAGE_CACHE_ENTRY_BYTES = 1024 * 1024

# Most pages a server renders into its page cache at start, in the
# background, one at a time (app/warmup.py): the gallery's page, then every
# inner step of every packaged scenario (page, fragment, .json, three SVGs,
# and .txt when MREMAP_VIZ_PUBLIC_URL is set: 7,133 pages for 26 scenarios, ~25 s of
# one core). 0: no warm-up at all. An operator may set it as
# MREMAP_VIZ_WARM_PAGES. Every warm-up also stops before the page cache is full.
WARM_PAGES = int(_operator("WARM_PAGES", "8192"))

# A new short link's pages are warmed the same way when it is made: at most
# this many pages of it (the first steps' first), and at most this many links
# waiting; a link made past that is rendered on its first visit. One client
# may make SHARES_PER_CLIENT links: the warm-up is one request at a time, so
# however many wait, it takes at most one thread's share of the server.
WARM_LINK_PAGES = 1000
WARM_QUEUED_LINKS = 32


# --- caching ------------------------------------------------------------------

# How long a browser may keep a static file fetched by its content-hashed URL
# (app/assets.py): a year, immutable; a changed file has a new URL.
ASSET_MAX_AGE_SECONDS = 365 * 24 * 3600


# --- sharing (app/share.py) ---------------------------------------------------

# Longest self-contained link token (`/play?s=v1.<token>`), in characters.
# A 64 KiB source compresses to well under this; longer URLs break in proxies.
MAX_TOKEN_CHARS = 16_000

# Most bytes a token may inflate to: the canonical JSON of source and options.
# JSON escapes may grow a source up to six-fold (\u0001), so allow headroom.
MAX_DECOMPRESSED_BYTES = 6 * MAX_SOURCE_BYTES + 1024

# Largest shared source, in UTF-8 bytes: the parser's own MAX_SOURCE_BYTES,
# so a whole selftest file pasted into /play (merge.c with the series' tests
# is 67 KB) has a link like any scenario. Its token (MAX_TOKEN_CHARS) is what
# bounds a self-contained link: a longer one becomes a short link instead.
MAX_SHARED_SOURCE_BYTES = MAX_SOURCE_BYTES

# Largest body of POST /api/share, POST /share and POST /play (a form: a
# source of MAX_SHARED_SOURCE_BYTES, percent-encoded, is at most three times
# as long).
MAX_SHARE_BODY_BYTES = 8 * MAX_SOURCE_BYTES

# Shortest short-link id (hex digits of the scenario's SHA-256); a colliding
# prefix grows one digit at a time until it is unique.
MIN_ID_LENGTH = 8

# --- the compare view (app/views/compare.py) -----------------------------------

# Most variants one compare page runs and draws side by side: every
# RELOCATE_ANON policy of a scenario at once (six since posted_stale_stack).
COMPARE_MAX_VARIANTS = 6


# --- who may write or run how much (app/ratelimit.py) ------------------------------
#
# Per client (its socket address, or what a trusted proxy says: app/clients.py;
# an IPv6 client by its /64), counted in fixed windows in the share store, so
# every worker and server of a deployment counts together. Over a limit is a
# 429 naming it, with Retry-After. In `limits` notation ("N/minute; M/day");
# an operator may set each as MREMAP_VIZ_<NAME>.

# New short links: POST /api/share and POST /share together.
SHARES_PER_CLIENT = _operator("SHARES_PER_CLIENT", "20/minute; 200/day")

# Runs of a scenario no cache holds: POST /api/run and /play with a new source.
RUNS_PER_CLIENT = _operator("RUNS_PER_CLIENT", "60/minute; 2000/day")


# --- the share store (app/store.py) -------------------------------------------------

# What the shares table may hold: links and bytes (scenario and fingerprint).
# Past either, a new link is a 507 that says so; stored links keep working.
MAX_STORE_ROWS = int(_operator("MAX_STORE_ROWS", "200000"))
MAX_STORE_BYTES = int(_operator("MAX_STORE_BYTES", str(1024 * 1024 * 1024)))

# How long a store call may wait: connecting to PostgreSQL, one statement, a
# silent peer (tcp_user_timeout), or SQLite's lock. Then the answer is a 503.
STORE_TIMEOUT_SECONDS = 3.0
