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
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg

SQLITE_FILE = "shares.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    scenario TEXT NOT NULL,
    engine TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class ShareRecord:
    """One shared scenario: its canonical JSON, and the engine that told its story."""

    scenario: str
    engine: str
    fingerprint: list[str] = field(default_factory=list)
    created: str = ""

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
    """The two statements whose SQL differs between databases."""

    insert: str
    """Insert (id, scenario, engine, fingerprint, created) unless the id is taken."""
    select: str
    """The record's (scenario, engine, fingerprint, created) by id."""


COLUMNS = "id, scenario, engine, fingerprint, created"
RECORD = "SELECT scenario, engine, fingerprint, created FROM shares WHERE id = "
EVERY = f"SELECT {COLUMNS} FROM shares ORDER BY id"

SQLITE = Dialect(
    insert=f"INSERT OR IGNORE INTO shares ({COLUMNS}) VALUES (?, ?, ?, ?, ?)",
    select=RECORD + "?",
)
POSTGRES = Dialect(
    insert=f"INSERT INTO shares ({COLUMNS}) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (id) DO NOTHING",
    select=RECORD + "%s",
)


class SQLStore:
    """The shares table through DB-API connections, one per thread; a subclass
    says how to open one (and make the table) and which SQL dialect it speaks."""

    dialect: Dialect

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._connect()  # create the table now, not on the first share

    def _open(self) -> Any:
        """A new autocommit connection, the table created."""
        raise NotImplementedError

    def _alive(self, conn: Any) -> bool:
        return True

    def _connect(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or not self._alive(conn):
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def put(self, ident: str, record: ShareRecord) -> bool:
        cur = self._connect().execute(self.dialect.insert, (ident, *record.row()))
        return bool(cur.rowcount == 1)

    def get(self, ident: str) -> ShareRecord | None:
        row = self._connect().execute(self.dialect.select, (ident,)).fetchone()
        return None if row is None else ShareRecord.from_row(row)

    def records(self) -> Iterator[tuple[str, ShareRecord]]:
        for ident, *row in self._connect().execute(EVERY):
            yield str(ident), ShareRecord.from_row(row)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):  # SQLite: another thread's
                    conn.close()
            self._all.clear()
        self._local = threading.local()


class SQLiteStore(SQLStore):
    """One SQLite file in WAL mode, synchronous=FULL."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(SCHEMA)
        return conn


class PostgresStore(SQLStore):
    """A PostgreSQL database (psycopg 3), synchronous_commit at its default."""

    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__()

    def _open(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.url, autocommit=True)
        # Servers starting together must not race on CREATE TABLE IF NOT EXISTS.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(520250618)")
            conn.execute(SCHEMA)
        return conn

    def _alive(self, conn: Any) -> bool:
        return not conn.closed


def open_store(data_dir: Path, database_url: str | None = None) -> Store:
    """PostgreSQL when DATABASE_URL (or `database_url`) is postgres:// or
    postgresql://; SQLite at a sqlite:/// URL's path; else SQLite in `data_dir`."""
    url = database_url if database_url is not None else os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    if url:
        scheme = url.split(":", 1)[0]
        raise ValueError(
            f"DATABASE_URL: unsupported scheme {scheme!r} (postgresql:// or sqlite:///)"
        )
    return SQLiteStore(data_dir / SQLITE_FILE)
