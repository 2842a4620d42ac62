"""Where shared scenarios live: SQLite under the data directory, or PostgreSQL.

A record is written once under its content-addressed id and never changed,
so the interface is two calls: `put` (insert if absent; says whether it
inserted) and `get`. Both stores share SQLStore's logic; they differ in
how a connection is opened and in the SQL dialect. `put` returns only after the row is durable: SQLite in
WAL mode with synchronous=FULL, PostgreSQL with synchronous_commit at its
default. With DATABASE_URL naming a PostgreSQL database, several app
servers can share one store behind any load balancer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg

from app.limits import MAX_STORE_BYTES, MAX_STORE_ROWS, STORE_TIMEOUT_SECONDS

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_FILE = "shares.sqlite3"

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS shares (
        id TEXT PRIMARY KEY,
        scenario TEXT NOT NULL,
        engine TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created TEXT NOT NULL
    )""",
    # The rate limiter's fixed-window counters (app/ratelimit.py), shared by
    # every worker and server on this store.
    """CREATE TABLE IF NOT EXISTS rate_counters (
        key TEXT PRIMARY KEY,
        count BIGINT NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    )""",
)


class StoreRefused(Exception):
    """The store cannot do this now: `status` 507 (full: no room for new
    links) or 503 (unavailable: try again); `limit` names the cause."""

    def __init__(self, message: str, status: int, limit: str) -> None:
        super().__init__(message)
        self.status = status
        self.limit = limit


@dataclass(frozen=True)
class ShareRecord:
    """One shared scenario: its canonical JSON, and the engine that told its story."""

    scenario: str
    engine: str
    fingerprint: list[str] = field(default_factory=list)
    created: str = ""

    def size(self) -> int:
        """Its bytes as the quota counts them: the scenario and the fingerprint."""
        return len(self.scenario.encode("utf-8", "surrogatepass")) + len(
            json.dumps(self.fingerprint).encode()
        )

    def row(self) -> tuple[str, str, str, str]:
        return (self.scenario, self.engine, json.dumps(self.fingerprint), self.created)

    @classmethod
    def from_row(cls, row: Any) -> ShareRecord:
        scenario, engine, fingerprint, created = row
        return cls(str(scenario), str(engine), list(json.loads(fingerprint)), str(created))


class Store(Protocol):
    """Write-once storage of share records by id."""

    def put(self, ident: str, record: ShareRecord) -> bool:
        """Store `record` under `ident` unless that id is taken; True if it stored it."""
        ...

    def get(self, ident: str) -> ShareRecord | None: ...

    def records(self) -> Iterator[tuple[str, ShareRecord]]:
        """Every (id, record), ordered by id: what `mremap-viz links export` writes."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    """The statements whose SQL differs between databases: placeholders, and
    what "insert unless present" and "bytes of text" are spelt as."""

    insert: str
    """Insert (id, scenario, engine, fingerprint, created) unless the id is taken."""
    select: str
    """The record's (scenario, engine, fingerprint, created) by id."""
    usage: str
    """(rows, bytes) of the shares table: what the quota counts."""
    incr: str
    """Add to a counter (key, amount, now, expires, now, now), restarting its
    window if it expired; returns (count, expires)."""
    counter: str
    """A counter's (count, expires) by key."""
    forget: str
    """Delete counters whose window ended before the given time."""
    drop: str
    """Delete one counter by key."""


COLUMNS = "id, scenario, engine, fingerprint, created"
RECORD = "SELECT scenario, engine, fingerprint, created FROM shares WHERE id = "
EVERY = f"SELECT {COLUMNS} FROM shares ORDER BY id"
USAGE = "SELECT COUNT(*), COALESCE(SUM({scenario} + {fingerprint}), 0) FROM shares"
INCR = (
    "INSERT INTO rate_counters (key, count, expires) VALUES ({p}, {p}, {p})"
    " ON CONFLICT (key) DO UPDATE SET"
    " count = CASE WHEN rate_counters.expires <= {p} THEN excluded.count"
    " ELSE rate_counters.count + excluded.count END,"
    " expires = CASE WHEN rate_counters.expires <= {p} THEN excluded.expires"
    " ELSE rate_counters.expires END"
    " RETURNING count, expires"
)
COUNTER = "SELECT count, expires FROM rate_counters WHERE key = {p}"
FORGET = "DELETE FROM rate_counters WHERE expires < {p}"
DROP = "DELETE FROM rate_counters WHERE key = {p}"


def _dialect(p: str, insert: str, octets: str) -> Dialect:
    return Dialect(
        insert=insert,
        select=RECORD + p,
        usage=USAGE.format(
            scenario=octets.format("scenario"), fingerprint=octets.format("fingerprint")
        ),
        incr=INCR.format(p=p),
        counter=COUNTER.format(p=p),
        forget=FORGET.format(p=p),
        drop=DROP.format(p=p),
    )


SQLITE = _dialect(
    "?",
    f"INSERT OR IGNORE INTO shares ({COLUMNS}) VALUES (?, ?, ?, ?, ?)",
    "length(CAST({} AS BLOB))",
)
POSTGRES = _dialect(
    "%s",
    f"INSERT INTO shares ({COLUMNS}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
    "octet_length({})",
)


@dataclass(frozen=True)
class Quota:
    """How much the shares table may hold; a new link past either is a 507."""

    rows: int
    bytes: int


class SQLStore:
    """The tables through DB-API connections, one per thread; a subclass says
    how to open one (and make the tables), which SQL dialect it speaks, and
    which of its driver's errors mean "full" or "unavailable".

    A connection that failed is dropped, and the next call opens a new one:
    a database that went away and came back serves again without a restart.
    A call on a connection that had been working is retried once on a new
    one (the first call after the database restarted finds its old
    connection cut).
    """

    dialect: Dialect

    def __init__(self, quota: Quota) -> None:
        self.quota = quota
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        try:
            self._call(lambda conn: None)  # create the tables now, not on the first share
        except StoreRefused as err:
            log.warning("the share store is not reachable yet: %s", err)

    def _open(self) -> Any:
        """A new autocommit connection, the tables created."""
        raise NotImplementedError

    def _refusal(self, err: Exception) -> StoreRefused | None:
        """What a driver error means for the caller, if it is the store's state."""
        raise NotImplementedError

    def _connect(self) -> Any:
        """This thread's connection, opened if it has none."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            with contextlib.suppress(Exception):
                conn.close()

    def _call(self, work: Callable[[Any], T]) -> T:
        """`work(connection)`, its driver errors as StoreRefused."""
        for attempt in (1, 2):
            fresh = getattr(self._local, "conn", None) is None
            try:
                return work(self._connect())
            except StoreRefused:
                raise
            except Exception as err:
                refusal = self._refusal(err)
                if refusal is None:
                    raise
                if refusal.status == 503:
                    self._drop()
                    if attempt == 1 and not fresh:
                        continue
                raise refusal from err
        raise AssertionError("unreachable")

    def put(self, ident: str, record: ShareRecord) -> bool:
        def insert(conn: Any) -> bool:
            rows, size = conn.execute(self.dialect.usage).fetchone()
            if rows >= self.quota.rows:
                raise StoreRefused(
                    f"the store holds MAX_STORE_ROWS ({self.quota.rows}) links",
                    507,
                    "MAX_STORE_ROWS",
                )
            if size + record.size() > self.quota.bytes:
                raise StoreRefused(
                    f"the store holds MAX_STORE_BYTES ({self.quota.bytes}) bytes of links",
                    507,
                    "MAX_STORE_BYTES",
                )
            return bool(conn.execute(self.dialect.insert, (ident, *record.row())).rowcount == 1)

        return self._call(insert)

    def get(self, ident: str) -> ShareRecord | None:
        row = self._call(lambda conn: conn.execute(self.dialect.select, (ident,)).fetchone())
        return None if row is None else ShareRecord.from_row(row)

    def records(self) -> Iterator[tuple[str, ShareRecord]]:
        for ident, *row in self._call(lambda conn: conn.execute(EVERY).fetchall()):
            yield str(ident), ShareRecord.from_row(row)

    def usage(self) -> tuple[int, int]:
        rows, size = self._call(lambda conn: conn.execute(self.dialect.usage).fetchone())
        return int(rows), int(size)

    def incr(self, key: str, amount: int, expiry: float, now: float) -> tuple[int, float]:
        params = (key, amount, now + expiry, now, now)
        count, expires = self._call(lambda c: c.execute(self.dialect.incr, params).fetchone())
        return int(count), float(expires)

    def counter(self, key: str) -> tuple[int, float] | None:
        row = self._call(lambda conn: conn.execute(self.dialect.counter, (key,)).fetchone())
        return None if row is None else (int(row[0]), float(row[1]))

    def forget_counters(self, before: float) -> None:
        self._call(lambda conn: conn.execute(self.dialect.forget, (before,)))

    def forget_counter(self, key: str) -> None:
        self._call(lambda conn: conn.execute(self.dialect.drop, (key,)))

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):  # SQLite: another thread's
                    conn.close()
            self._all.clear()
        self._local = threading.local()


class SQLiteStore(SQLStore):
    """One SQLite file in WAL mode, synchronous=FULL.

    A full disk (SQLITE_FULL) refuses writes with a 507; reads go on, and
    SQLite's journal keeps the file whole, so links acknowledged before it
    stay readable and integrity_check passes once space returns.
    """

    dialect = SQLITE

    def __init__(self, path: Path, quota: Quota) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(quota)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=STORE_TIMEOUT_SECONDS, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in SCHEMA:
            conn.execute(statement)
        return conn

    def _refusal(self, err: Exception) -> StoreRefused | None:
        if isinstance(err, sqlite3.OperationalError):
            if getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(err):
                return StoreRefused("the disk under the share store is full", 507, "disk full")
            return StoreRefused(f"the share store is busy: {err}", 503, "STORE_TIMEOUT_SECONDS")
        return None


class PostgresStore(SQLStore):
    """A PostgreSQL database (psycopg 3), synchronous_commit at its default.

    Connecting, and each statement, give up after STORE_TIMEOUT_SECONDS
    (connect_timeout, statement_timeout, and tcp_user_timeout for a host that
    stopped answering): then the caller gets a 503.
    """

    dialect = POSTGRES

    def __init__(self, url: str, quota: Quota) -> None:
        self.url = url
        super().__init__(quota)

    def _open(self) -> psycopg.Connection[Any]:
        milliseconds = int(STORE_TIMEOUT_SECONDS * 1000)
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(2, int(STORE_TIMEOUT_SECONDS)),
            tcp_user_timeout=milliseconds,
            options=f"-c statement_timeout={milliseconds}",
        )
        # Servers starting together must not race on CREATE TABLE IF NOT EXISTS.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(520250618)")
            for statement in SCHEMA:
                conn.execute(statement)
        return conn

    def _refusal(self, err: Exception) -> StoreRefused | None:
        if isinstance(err, psycopg.errors.DiskFull):
            return StoreRefused("the disk under the share store is full", 507, "disk full")
        if isinstance(err, psycopg.OperationalError | psycopg.InterfaceError):
            return StoreRefused(
                f"the share database is unavailable: {str(err).strip().splitlines()[0]}",
                503,
                "STORE_TIMEOUT_SECONDS",
            )
        return None


def open_store(
    data_dir: Path, database_url: str | None = None, quota: Quota | None = None
) -> SQLStore:
    """PostgreSQL when DATABASE_URL (or `database_url`) is postgres:// or
    postgresql://; SQLite at a sqlite:/// URL's path; else SQLite in `data_dir`.
    The quota is MAX_STORE_ROWS and MAX_STORE_BYTES unless given."""
    url = database_url if database_url is not None else os.environ.get("DATABASE_URL", "")
    quota = quota or Quota(rows=MAX_STORE_ROWS, bytes=MAX_STORE_BYTES)
    if url.startswith(("postgres://", "postgresql://")):
        return PostgresStore(url, quota)
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")), quota)
    if url:
        scheme = url.split(":", 1)[0]
        raise ValueError(
            f"DATABASE_URL: unsupported scheme {scheme!r} (postgresql:// or sqlite:///)"
        )
    return SQLiteStore(data_dir / SQLITE_FILE, quota)
