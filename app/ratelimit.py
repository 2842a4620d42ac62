"""Per-client rate limits on what writes or runs, counted across every server.

The `limits` library (maintained, used by Flask-Limiter and slowapi) does the
counting: its fixed-window strategy over a storage. Its own storages need
Redis, Memcached or MongoDB; a deployment here already has one shared
database, the share store, so `StoreCounters` is a `limits` storage on the
store's rate_counters table (app/store.py: one atomic upsert per hit), and
several workers and servers on one PostgreSQL (or one SQLite file) count
together. The limits themselves are named in app/limits.py.

If the counters cannot be reached (the database is away, the disk full), a
request is let through and the failure logged: the limit protects the store
and the workers, and a write then fails on its own with a clear 503 or 507.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from app.limits import RUNS_PER_CLIENT, SHARES_PER_CLIENT
from app.store import SQLStore, StoreRefused

log = logging.getLogger(__name__)

FORGET_EVERY = 1000
"""Hits between sweeps of ended windows' counters out of the table."""


@dataclass(frozen=True)
class NamedLimit:
    """A limit as app/limits.py names it, parsed into the library's items."""

    name: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def of(cls, name: str, text: str) -> NamedLimit:
        """`text` in the library's notation; a ValueError names the limit."""
        try:
            return cls(name, tuple(parse_many(text)))
        except ValueError as err:
            raise ValueError(f"{name} (MREMAP_VIZ_{name}): {err}") from None


SHARES = NamedLimit.of("SHARES_PER_CLIENT", SHARES_PER_CLIENT)
RUNS = NamedLimit.of("RUNS_PER_CLIENT", RUNS_PER_CLIENT)


class RateLimited(Exception):
    """Over a named limit: a 429 with Retry-After (app/errors.py)."""

    def __init__(self, limit: NamedLimit, item: RateLimitItem, retry_after: int) -> None:
        super().__init__(f"over {limit.name} ({item}): try again in {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after


class StoreCounters(Storage):
    """A `limits` storage on the share store's rate_counters table."""

    STORAGE_SCHEME = None

    def __init__(self, store: SQLStore, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self._hits = 0

    @property
    def base_exceptions(self) -> type[Exception]:
        return StoreRefused

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self.clock()
        self._hits += 1
        if self._hits % FORGET_EVERY == 0:
            self.store.forget_counters(now)
        return self.store.incr(key, amount, expiry, now)[0]

    def get(self, key: str) -> int:
        found = self.store.counter(key)
        return 0 if found is None or found[1] <= self.clock() else found[0]

    def get_expiry(self, key: str) -> float:
        found = self.store.counter(key)
        return self.clock() if found is None else found[1]

    def check(self) -> bool:
        try:
            self.store.usage()
        except StoreRefused:
            return False
        return True

    def reset(self) -> int | None:
        self.store.forget_counters(math.inf)
        return None

    def clear(self, key: str) -> None:
        self.store.forget_counter(key)


class Limiter:
    """Counts a client's hits against named limits."""

    def __init__(self, store: SQLStore, clock: Callable[[], float] = time.time) -> None:
        self.storage = StoreCounters(store, clock)
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.clock = clock

    def hit(self, limit: NamedLimit, client: str) -> None:
        """Count one hit of `client` against every window of `limit`; RateLimited
        if it is over one (the hit counts all the same: a client that keeps
        knocking stays limited until the window ends)."""
        try:
            for item in limit.items:
                if not self.strategy.hit(item, limit.name, client):
                    reset = self.strategy.get_window_stats(item, limit.name, client).reset_time
                    raise RateLimited(limit, item, max(1, math.ceil(reset - self.clock())))
        except StoreRefused as err:
            log.warning("rate limit %s not counted for %s: %s", limit.name, client, err)
