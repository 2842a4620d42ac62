"""The service as deployed: several servers on one store, links moved between stores.

Real app servers (`python -m app`, tests/support/servers.py) on a real
PostgreSQL (tests/support/postgres.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from app.assets import ASSET_HASH_CHARS
from app.limits import ASSET_MAX_AGE_SECONDS
from app.main import create_app
from app.runs import RunCache
from app.share import RunOptions, SharedScenario, canonical, scenario_digest, share
from app.store import open_store
from engine.version import ENGINE_VERSION
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
    procs = [
        start_app(tmp_path / "a", ports[0], DATABASE_URL=pg_url),
        start_app(tmp_path / "b", ports[1], "--workers", "2", DATABASE_URL=pg_url),
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
