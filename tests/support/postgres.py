"""A throwaway PostgreSQL server from Debian's packages, for the store tests.

`postgres` is one server for the session (its URL); `pg_url` a fresh
database on it per test; `store_url` runs a test on SQLite and on
PostgreSQL. `pg_server` is a server of the test's own, which the test may
stop and start again (a database going away and coming back).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.servers import free_port


def _bindir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """initdb'd in a temporary directory, listening on 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None:
            pytest.skip(
                "no PostgreSQL server here: apt-get install postgresql (./dev test does so as root)"
            )
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="mremap-viz-pg-"))
        self.prefix: list[str] = []
        if os.getuid() == 0:
            if (
                shutil.which("runuser") is None
                or subprocess.run(["id", "postgres"], capture_output=True).returncode
            ):
                pytest.skip("running as root without a postgres user to run the server as")
            shutil.chown(self.root, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.data = self.root / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        try:
            self._pg(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
            self.start()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            shutil.rmtree(self.root, ignore_errors=True)
            pytest.fail(f"PostgreSQL is installed but did not start: {err}")

    def _pg(self, program: str, *args: str) -> None:
        subprocess.run(
            [*self.prefix, str(self.bindir / program), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        """Immediate shutdown: every connection is cut, as when the database host goes."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def database(self) -> str:
        """The URL of a new, empty database on this server."""
        name = f"share_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def remove(self) -> None:
        subprocess.run(
            [
                *self.prefix,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


_databases = iter(range(1_000_000))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def postgres(postgres_server: PostgresServer) -> str:
    """The session's PostgreSQL server's URL."""
    return postgres_server.url


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's server."""
    return postgres_server.database()


@pytest.fixture
def pg_server() -> Iterator[PostgresServer]:
    """A server of the test's own, to stop and start."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shares.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))
