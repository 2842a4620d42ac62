"""kill -9 the server while shares are being written: every acknowledged
link must resolve after a restart, and the store must be intact.

A real server process (python -m app) on loopback, a temporary data
directory, threads posting distinct scenarios to /api/share, SIGKILL at
three moments, then a restart on the same directory.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.store import SQLITE_FILE
from tests.support.servers import free_port, start_app

WRITERS = 6


def scenario(writer: int, n: int) -> str:
    """A distinct small scenario per (writer, n)."""
    pages = 1 + writer * 1000 + n
    return f"char *p = mmap(NULL, {pages} * page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


@pytest.mark.parametrize("kill_after", [1, 10, 40])
def test_acknowledged_shares_survive_kill_9(data: Path, kill_after: int) -> None:
    """kill_after: acknowledged shares to wait for before the kill (while the
    writers go on), so the kill lands mid-stream however loaded the host."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_app(data, port)
    acked: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        with httpx.Client(timeout=5) as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                source = scenario(w, n)
                try:
                    r = client.post(url + "/api/share", json={"source": source})
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 200:
                    with lock:
                        acked[r.json()["id"]] = source

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < kill_after and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= kill_after, "too few shares were acknowledged before the kill"

    db = sqlite3.connect(data / SQLITE_FILE)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()

    proc = start_app(data, port)
    try:
        with httpx.Client(timeout=10) as client:
            for ident, source in acked.items():
                r = client.get(f"{url}/s/{ident}.json")
                assert r.status_code == 200, ident
                assert r.json()["source"] == source
            # sharing again after the restart finds the same link
            ident, source = next(iter(acked.items()))
            again = client.post(url + "/api/share", json={"source": source})
            assert again.json()["id"] == ident
    finally:
        proc.terminate()
        proc.wait(timeout=10)
