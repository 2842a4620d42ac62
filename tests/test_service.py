"""The service as deployed: several servers on one store, links moved between stores.

Real app servers (`python -m app`, tests/support/servers.py) on a real
PostgreSQL (tests/support/postgres.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from app.assets import ASSET_HASH_CHARS
from app.limits import ASSET_MAX_AGE_SECONDS, STORE_TIMEOUT_SECONDS
from app.main import create_app
from app.runs import RunCache
from app.share import RunOptions, SharedScenario, canonical, scenario_digest, share
from app.store import open_store
from engine.version import ENGINE_VERSION
from tests.support.postgres import PostgresServer
from tests.support.servers import ROOT, free_port, start_app

SOURCE = """\
char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 4 * page_size);
char *q = mremap(p, 2 * page_size, 2 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, p + 8 * page_size);
"""


def variant(n: int) -> str:
    return SOURCE + f"// variant {n}\n"


@pytest.fixture
def two_servers(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two app servers, the second with two worker processes, on one PostgreSQL database."""
    ports = free_port(), free_port()
    env = {"DATABASE_URL": pg_url, "MREMAP_VIZ_SHARES_PER_CLIENT": "1000/minute"}
    procs = [
        start_app(tmp_path / "a", ports[0], **env),
        start_app(tmp_path / "b", ports[1], "--workers", "2", **env),
    ]
    try:
        yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    assert not (tmp_path / "a" / "shares.sqlite3").exists()


def test_a_link_made_on_one_server_resolves_on_the_other(two_servers: tuple[str, str]) -> None:
    a, b = two_servers
    made = httpx.post(a + "/api/share", json={"source": SOURCE}, timeout=60)
    assert made.status_code == 200, made.text
    url = made.json()["url"]
    there = httpx.get(b + url + ".json", timeout=60)
    assert there.status_code == 200
    assert there.json()["source"] == SOURCE
    again = httpx.post(b + "/api/share", json={"source": SOURCE}, timeout=60)
    assert again.json()["id"] == made.json()["id"]


def test_shares_written_to_both_at_once_stay_correct(two_servers: tuple[str, str]) -> None:
    """Distinct scenarios to either server, and the same scenarios to both at
    once: every link resolves on both, to its own source, one id per scenario."""
    a, b = two_servers
    jobs = [(server, n) for n in range(24) for server in (a, b)]

    def post(job: tuple[str, int]) -> tuple[int, str]:
        server, n = job
        r = httpx.post(server + "/api/share", json={"source": variant(n)}, timeout=120)
        assert r.status_code == 200, r.text
        return n, str(r.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, jobs))
    ids: dict[int, set[str]] = {}
    for n, ident in results:
        ids.setdefault(n, set()).add(ident)
    assert all(len(found) == 1 for found in ids.values()), ids
    assert len({next(iter(found)) for found in ids.values()}) == len(ids)
    for n, found in ids.items():
        for server in (a, b):
            r = httpx.get(f"{server}/s/{next(iter(found))}.json", timeout=60)
            assert r.status_code == 200
            assert r.json()["source"] == variant(n)


# --- caching: hashed static URLs, pages that revalidate -----------------------------


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    application = create_app(isolate=False)
    with TestClient(application) as c:
        yield c
    application.state.store.close()


def test_static_files_have_content_hashed_urls_cached_for_long(client: TestClient) -> None:
    page = client.get("/scenarios/dontunmap")
    doc = HTMLParser(page.text)
    urls = [n.attributes["src"] for n in doc.css("script[src]")]
    urls += [n.attributes["href"] for n in doc.css("link[href^='/static/']")]
    assert len(urls) == 4
    for url in urls:
        path, _, version = url.partition("?v=")
        content = (ROOT / "app" / path.lstrip("/")).read_bytes()
        assert version == hashlib.sha256(content).hexdigest()[:ASSET_HASH_CHARS]
        fresh = client.get(url)
        assert fresh.status_code == 200
        assert fresh.headers["cache-control"] == (
            f"public, max-age={ASSET_MAX_AGE_SECONDS}, immutable"
        )
        stale = client.get(path + "?v=000000000000")
        assert stale.headers["cache-control"] == "no-cache"
        assert client.get(path).headers["cache-control"] == "no-cache"
        assert client.get(path, headers={"If-None-Match": fresh.headers["etag"]}).status_code == 304


@pytest.mark.parametrize(
    "url, headers",
    [
        ("/", {}),
        ("/scenarios/dontunmap?step=2", {}),
        ("/scenarios/dontunmap?step=2", {"HX-Request": "true"}),
        ("/scenarios/dontunmap.txt?step=2", {}),
        ("/scenarios/dontunmap.json", {}),
        ("/scenarios/dontunmap/map.svg?step=2", {}),
    ],
)
def test_pages_revalidate_with_an_etag(
    client: TestClient, url: str, headers: dict[str, str]
) -> None:
    first = client.get(url, headers=headers)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = client.get(url, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = client.get(url, headers={**headers, "If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


def test_a_changed_page_has_a_new_etag(client: TestClient) -> None:
    one = client.get("/scenarios/dontunmap?step=1").headers["etag"]
    two = client.get("/scenarios/dontunmap?step=2").headers["etag"]
    fragment = client.get("/scenarios/dontunmap?step=1", headers={"HX-Request": "true"})
    assert len({one, two, fragment.headers["etag"]}) == 3


# --- links export / import ----------------------------------------------------------


def links(action: str, file: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "links", action, str(file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


SHARED = [
    SharedScenario(source=SOURCE),
    SharedScenario(source=SOURCE, options=RunOptions(policy="split")),
    SharedScenario(source="munmap(0, page_size);\n// é ☃ \U0001f600\n"),
    SharedScenario(source="char *p = mmap(NULL,\n"),  # does not parse: shared all the same
]


def test_links_move_sqlite_to_postgresql_and_back(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = f"sqlite:///{tmp_path / 'first.sqlite3'}"
    store = open_store(tmp_path, first)
    ids = [share(store, RunCache(), scenario) for scenario in SHARED]
    store.close()

    exported = tmp_path / "links.jsonl"
    done = links("export", exported, first)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids)
    assert all(line["engine"] == ENGINE_VERSION for line in lines)
    assert {"id", "source", "options", "engine", "fingerprint", "created"} <= lines[0].keys()

    done = links("import", exported, pg_url)
    assert done.returncode == 0, done.stderr
    assert f"imported {len(SHARED)} links (0 were" in done.stdout
    again = links("import", exported, pg_url)
    assert f"imported 0 links ({len(SHARED)} were already there)" in again.stdout

    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", pg_url)
    application = create_app(isolate=False)
    with TestClient(application) as c:
        for ident, scenario in zip(ids, SHARED, strict=True):
            page = c.get(f"/s/{ident}")
            assert page.status_code == 200
            assert HTMLParser(page.text).css_first("#drift") is None  # its fingerprint moved too
            twin = c.get(f"/s/{ident}.json")
            if twin.status_code == 200:
                assert twin.json()["source"] == scenario.source
        assert shared_id(c, SHARED[0]) == ids[0]  # the moved link is the one a share finds
    application.state.store.close()

    back = tmp_path / "back.jsonl"
    assert links("export", back, pg_url).returncode == 0
    assert back.read_text() == exported.read_text()
    second = f"sqlite:///{tmp_path / 'second.sqlite3'}"
    assert links("import", back, second).returncode == 0
    final = tmp_path / "final.jsonl"
    assert links("export", final, second).returncode == 0
    assert final.read_text() == exported.read_text()


def shared_id(c: TestClient, scenario: SharedScenario) -> str:
    r = c.post("/api/share", json=scenario.model_dump(exclude_none=True))
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_an_import_refuses_a_line_whose_id_is_not_its_scenarios(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    good = {"id": "", "source": SOURCE, "options": {}, "engine": ENGINE_VERSION}
    good["id"] = scenario_digest(canonical(SharedScenario(source=SOURCE)))[:8]
    forged = {**good, "source": "munmap(0, 4096);\n"}
    file = tmp_path / "links.jsonl"
    file.write_text(json.dumps(good) + "\n" + json.dumps(forged) + "\n")
    done = links("import", file, url)
    assert done.returncode == 2
    assert f"{file}:2: id '{good['id']}' is not a prefix of its scenario's digest" in done.stderr
    file.write_text(json.dumps({**good, "options": {"policy": "nonsense"}}) + "\n")
    bad = links("import", file, url)
    assert bad.returncode == 2 and f"{file}:1: not a link line: " in bad.stderr
    assert "unknown policy" in bad.stderr


# --- rate limits ----------------------------------------------------------------------


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts app servers with the given environment; their base URLs."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **env: str) -> str:
        port = free_port()
        procs.append(start_app(tmp_path / f"data{len(procs)}", port, *args, **env))
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def assert_limited(r: httpx.Response, name: str, kind: str) -> None:
    assert r.status_code == 429, r.text
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["content-type"].startswith(kind)
    if kind == "application/json":
        detail = r.json()["detail"][0]
        assert detail["limit"] == name and detail["type"] == "rate_limited"
    else:
        assert name in HTMLParser(r.text).body.text()  # type: ignore[union-attr]


def test_one_client_is_limited_and_a_forged_forwarded_for_does_not_help(
    servers: Callable[..., str],
) -> None:
    base = servers(MREMAP_VIZ_SHARES_PER_CLIENT="3/minute", MREMAP_VIZ_RUNS_PER_CLIENT="2/minute")
    with httpx.Client(base_url=base, timeout=60) as c:
        for n in range(3):
            assert c.post("/api/share", json={"source": variant(n)}).status_code == 200
        assert_limited(
            c.post("/api/share", json={"source": variant(9)}),
            "SHARES_PER_CLIENT",
            "application/json",
        )
        forged = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.7"}
        assert_limited(
            c.post("/api/share", json={"source": variant(10)}, headers=forged),
            "SHARES_PER_CLIENT",
            "application/json",
        )
        assert_limited(
            c.post("/share", data={"source": variant(11)}), "SHARES_PER_CLIENT", "text/html"
        )
        assert c.get("/play", params={"source": variant(20)}).status_code == 200
        assert c.get("/play", params={"source": variant(21)}).status_code == 200
        assert_limited(
            c.get("/play", params={"source": variant(22)}), "RUNS_PER_CLIENT", "text/html"
        )
        # A run the cache holds costs nothing: stepping through it is not limited.
        assert c.get("/play", params={"source": variant(20), "step": 2}).status_code == 200
        assert_limited(
            c.post("/api/run", json={"source": variant(23)}), "RUNS_PER_CLIENT", "application/json"
        )
        assert c.get("/scenarios/dontunmap?step=1").status_code == 200


def test_a_trusted_proxy_names_the_client(servers: Callable[..., str]) -> None:
    base = servers(MREMAP_VIZ_SHARES_PER_CLIENT="2/minute", MREMAP_VIZ_TRUSTED_PROXIES="127.0.0.1")
    with httpx.Client(base_url=base, timeout=60) as c:
        one = {"X-Forwarded-For": "198.51.100.1"}
        for n in range(2):
            assert c.post("/api/share", json={"source": variant(n)}, headers=one).status_code == 200
        assert c.post("/api/share", json={"source": variant(2)}, headers=one).status_code == 429
        other = {"X-Forwarded-For": "198.51.100.2"}
        assert c.post("/api/share", json={"source": variant(2)}, headers=other).status_code == 200


def test_servers_on_one_store_count_a_client_together(
    servers: Callable[..., str], pg_url: str
) -> None:
    env = {"DATABASE_URL": pg_url, "MREMAP_VIZ_SHARES_PER_CLIENT": "3/minute"}
    a, b = servers(**env), servers(**env)
    codes = [
        httpx.post(base + "/api/share", json={"source": variant(n)}, timeout=60).status_code
        for n, base in enumerate((a, b, a, b))
    ]
    assert codes == [200, 200, 200, 429]


# --- a store that is full, or away ------------------------------------------------


def big(n: int, size: int = 40_000) -> str:
    return SOURCE + f"// variant {n} " + "x" * size + "\n"


def test_the_store_quota_refuses_new_links_and_keeps_the_old(servers: Callable[..., str]) -> None:
    base = servers(MREMAP_VIZ_MAX_STORE_ROWS="3")
    with httpx.Client(base_url=base, timeout=60) as c:
        ids = [c.post("/api/share", json={"source": variant(n)}).json()["id"] for n in range(3)]
        full = c.post("/api/share", json={"source": variant(3)})
        assert full.status_code == 507
        assert full.json()["detail"][0]["limit"] == "MAX_STORE_ROWS"
        page = c.post("/share", data={"source": variant(3)})
        assert page.status_code == 507 and "MAX_STORE_ROWS" in page.text
        assert "links already made still work" in page.text
        for n, ident in enumerate(ids):
            assert c.get(f"/s/{ident}.json").json()["source"] == variant(n)
        assert c.post("/api/share", json={"source": variant(1)}).json()["id"] == ids[1]
    base = servers(MREMAP_VIZ_MAX_STORE_BYTES="100000")
    with httpx.Client(base_url=base, timeout=60) as c:
        assert c.post("/api/share", json={"source": big(1)}).status_code == 200
        assert c.post("/api/share", json={"source": big(2)}).status_code == 200
        over = c.post("/api/share", json={"source": big(3)})
        assert over.status_code == 507
        assert over.json()["detail"][0]["limit"] == "MAX_STORE_BYTES"
        assert c.post("/api/share", json={"source": variant(1)}).status_code == 200  # small fits


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only)."""
    if os.getuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_refuses_writes_and_keeps_every_acknowledged_link(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(small_disk / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    application = create_app(isolate=False)
    filler = small_disk / "filler"
    acked: dict[str, str] = {}
    with TestClient(application) as c:
        c.post("/api/share", json={"source": variant(0)})  # the tables and WAL exist
        free = shutil.disk_usage(small_disk).free
        filler.write_bytes(b"\0" * (free - 400_000))
        answers = []
        for n in range(1, 16):
            r = c.post("/api/share", json={"source": big(n, 30_000)})
            answers.append(r.status_code)
            if r.status_code == 200:
                acked[r.json()["id"]] = big(n, 30_000)
            else:
                assert r.status_code == 507, r.text
                assert r.json()["detail"][0]["limit"] == "disk full"
        assert 200 in answers and 507 in answers, answers
        for ident, source in acked.items():  # reads go on while the disk is full
            assert c.get(f"/s/{ident}.json").json()["source"] == source
        filler.unlink()
        again = c.post("/api/share", json={"source": big(99, 30_000)})
        assert again.status_code == 200  # space is back: writes work, no restart
        acked[again.json()["id"]] = big(99, 30_000)
    application.state.store.close()
    with sqlite3.connect(small_disk / "data" / "shares.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    reopened = create_app(isolate=False)
    with TestClient(reopened) as c:
        for ident, source in acked.items():
            assert c.get(f"/s/{ident}.json").json()["source"] == source
    reopened.state.store.close()


def test_postgresql_going_away_is_a_503_in_bounded_time_then_works_again(
    pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", pg_server.database())
    application = create_app(isolate=False)
    with TestClient(application) as c:
        ident = c.post("/api/share", json={"source": variant(1)}).json()["id"]
        pg_server.stop()
        started = time.monotonic()
        down = c.post("/api/share", json={"source": variant(2)})
        assert time.monotonic() - started < STORE_TIMEOUT_SECONDS * 2 + 1
        assert down.status_code == 503
        assert down.json()["detail"][0]["limit"] == "STORE_TIMEOUT_SECONDS"
        assert int(down.headers["retry-after"]) > 0
        page = c.get(f"/s/{ident}")
        assert page.status_code == 503 and "unavailable" in page.text
        pg_server.start()
        back = c.post("/api/share", json={"source": variant(2)})
        assert back.status_code == 200, back.text
        assert c.get(f"/s/{ident}.json").json()["source"] == variant(1)
    application.state.store.close()
