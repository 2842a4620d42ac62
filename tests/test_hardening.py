"""Hostile input: limits named in one place and enforced, safe headers, no 5xx, markup as text."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from selectolax.lexbor import LexborHTMLParser as HTMLParser

import app.limits as L
from app.guard import EngineFailure, Guard, RunBusy, RunLimit, execute
from app.main import create_app
from engine.scenario.errors import ScenarioError
from engine.sim.limits import Limits

MAP = "char *p = mmap(NULL, {n} * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
# A few seconds of CPU: 2 GiB faulted in, moved, unmapped, again and again.
SLOW = (
    MAP.format(n=1)
    + "munmap(p, page_size);\n"
    + (
        "char *q = mmap(NULL, 65536 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "memset(q, 'x', 65536 * page_size);\n"
        "munmap(q, 65536 * page_size);\n"
    )
    * 40
)
BIG = Limits(max_steps=10**9, max_populated_pages=10**9, max_processes=16)
XSS = "<script>window.pwned=1</script>"
IMG = '<img src=x onerror="window.pwned=1">'


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path / "data"))
    with TestClient(create_app()) as c:
        yield c


# --- every limit in one place --------------------------------------------------------


def test_every_limit_is_named_in_app_limits() -> None:
    for name in (
        "MAX_BODY_BYTES",
        "MAX_SOURCE",
        "MAX_SOURCE_BYTES",
        "MAX_STATEMENTS",
        "MAX_PROCESSES",
        "MAX_EXPRESSION_DEPTH",
        "MAX_TOKEN_CHARS",
        "MAX_TRACE_BYTES",
        "MAX_RUN_CPU_SECONDS",
        "MAX_RUN_WALL_SECONDS",
        "MAX_RUN_MEMORY_BYTES",
        "WEB_LIMITS",
    ):
        assert getattr(L, name) is not None, name
    web, cli = L.WEB_LIMITS, L.CLI_LIMITS
    assert web.max_steps <= cli.max_steps and web.max_populated_pages <= cli.max_populated_pages


# --- the request body -------------------------------------------------------------------


def test_declared_body_over_the_limit_is_413_before_it_is_read(client: TestClient) -> None:
    body = b'{"source": "' + b"x" * (L.MAX_BODY_BYTES + 1) + b'"}'
    response = client.post("/api/run", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["detail"]


def test_streamed_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"source": "'
        for _ in range(L.MAX_BODY_BYTES // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    response = client.post(
        "/api/run", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.text


def test_source_over_max_source_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/api/run", json={"source": "x" * (L.MAX_SOURCE + 1)})
    assert response.status_code == 422


# --- headers ---------------------------------------------------------------------------


def test_pages_send_csp_and_frame_rules(client: TestClient) -> None:
    for url in ("/", "/scenarios/dontunmap", "/play", "/index.json", "/static/app.css"):
        headers = client.get(url).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_embed_mode_alone_may_be_framed(client: TestClient) -> None:
    headers = client.get("/scenarios/dontunmap?embed=1").headers
    assert "frame-ancestors *" in headers["content-security-policy"]
    assert "x-frame-options" not in headers
    assert "script-src 'self'" in headers["content-security-policy"]


def test_docs_loads_nothing_from_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    doc = HTMLParser(page.text)
    urls = [
        n.attributes.get("src") or n.attributes.get("href") or "" for n in doc.css("script, link")
    ]
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "/api/run" in client.get("/openapi.json").json()["paths"]


# --- markup is text ---------------------------------------------------------------------


def test_markup_in_a_scenario_is_shown_as_text(client: TestClient) -> None:
    source = f"// {XSS} {IMG}\n" + MAP.format(n=2) + f"p[0] = 'x'; // {XSS}\n"
    for url in (
        "/play?" + urlencode({"source": source}),
        "/play?" + urlencode({"source": source + "bogus(" + XSS}),
    ):
        page = client.get(url).text
        assert XSS not in page and "<img src=x" not in page
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page


# --- a run's bounds ---------------------------------------------------------------------


def test_the_api_body_is_encoded_in_the_worker() -> None:
    guard = Guard(workers=1, limits=BIG)
    try:
        body, size = guard.run_json(MAP.format(n=2) + "memset(p, 1, 2 * page_size);\n")
        doc = json.loads(body)
        assert size == len(body) and doc["steps"][1]["inner"]
        with pytest.raises(ScenarioError):
            guard.run_json("char *p = ;")
    finally:
        guard.close()


def test_a_run_over_its_cpu_time_stops_with_the_limit_named() -> None:
    guard = Guard(workers=1, limits=BIG, cpu_seconds=1, wall_seconds=30)
    try:
        start = time.monotonic()
        with pytest.raises(RunLimit) as caught:
            guard.run(SLOW)
        assert caught.value.limit == "MAX_RUN_CPU_SECONDS"
        assert time.monotonic() - start < 10
        run, size = guard.run(MAP.format(n=1))  # the worker (or its successor) still serves
        assert run.statements and size > 0
    finally:
        guard.close()


def test_a_run_over_its_wall_clock_is_killed() -> None:
    guard = Guard(workers=1, limits=BIG, cpu_seconds=60, wall_seconds=0.5)
    try:
        with pytest.raises(RunLimit) as caught:
            guard.run(SLOW)
        assert caught.value.limit == "MAX_RUN_WALL_SECONDS"
    finally:
        guard.close()


def test_a_run_over_its_memory_stops_with_the_limit_named() -> None:
    guard = Guard(workers=1, limits=BIG, memory=300 * 1024 * 1024, cpu_seconds=60, wall_seconds=60)
    # A fresh memset is stored as runs of folios (a few bytes a page), so
    # the hog copies on write after a fork: every copy is its own folio.
    hog = (
        "char *q = mmap(NULL, 131072 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "memset(q, 'x', 131072 * page_size);\n"
        "pid_t c = fork();\n"
        "memset(q, 'y', 131072 * page_size);\n"
    )
    try:
        with pytest.raises(RunLimit) as caught:
            guard.run(hog)
        assert caught.value.limit in ("MAX_RUN_MEMORY_BYTES", "MAX_TRACE_BYTES")
    finally:
        guard.close()


def test_a_trace_over_its_size_is_refused() -> None:
    guard = Guard(workers=1, max_trace=2_000)
    try:
        with pytest.raises(RunLimit) as caught:
            guard.run(MAP.format(n=4) + "memset(p, 'x', 4 * page_size);\n")
        assert caught.value.limit == "MAX_TRACE_BYTES"
    finally:
        guard.close()


def test_a_parse_error_comes_back_as_itself() -> None:
    guard = Guard(workers=1)
    try:
        with pytest.raises(ScenarioError) as caught:
            guard.run("munmap(p,;\n")
        assert caught.value.line == 1
    finally:
        guard.close()


def test_too_many_waiting_runs_are_503() -> None:
    guard = Guard(workers=1, limits=BIG, max_waiting=0, wall_seconds=2)
    try:
        slow = threading.Thread(target=lambda: pytest.raises(RunLimit, guard.run, SLOW))
        slow.start()
        time.sleep(0.3)
        with pytest.raises(RunBusy) as caught:
            guard.run(MAP.format(n=1))
        assert caught.value.status == 503
        slow.join()
    finally:
        guard.close()


def test_engine_failure_names_the_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.sim.simulation

    def broken(*args: object) -> int:
        raise KeyError("boom")

    monkeypatch.setitem(
        engine.sim.simulation.SYSCALLS,
        "munmap",
        engine.sim.simulation.Syscall("mm/vma.c", "do_vmi_munmap", broken),
    )
    answer = execute(MAP.format(n=1) + "munmap(p, page_size);\n", None, BIG, 60, 10**9)
    assert answer[0] == "engine"
    assert answer[2] == 2 and answer[3].startswith("munmap(p")
    assert "KeyError" in answer[1] and "boom" in answer[4]


def test_limit_and_engine_failure_pages_are_422_never_500(client: TestClient) -> None:
    runs = client.app.state.runs  # type: ignore[attr-defined]

    def limited(source: str, option: object) -> object:
        raise RunLimit("the run took more than 5 s of CPU", "MAX_RUN_CPU_SECONDS")

    runs.runner = runs.json_runner = limited
    page = client.get("/play?" + urlencode({"source": MAP.format(n=3)}))
    assert page.status_code == 422 and "MAX_RUN_CPU_SECONDS" in page.text
    api = client.post("/api/run", json={"source": MAP.format(n=3)})
    assert api.status_code == 422 and api.json()["detail"][0]["limit"] == "MAX_RUN_CPU_SECONDS"

    def failing(source: str, policy: str | None) -> object:
        raise EngineFailure("KeyError: 7", 2, f"munmap(p, {XSS})", "Traceback ...")

    runs.runner = failing
    page = client.get("/play?" + urlencode({"source": MAP.format(n=4)}))
    assert page.status_code == 422
    assert "The simulator failed on this scenario" in page.text and XSS not in page.text
    text = client.get("/play.txt?" + urlencode({"source": MAP.format(n=4)}))
    assert text.status_code == 422 and "line 2" in text.text


def test_web_limits_stop_a_large_run_with_its_name(client: TestClient) -> None:
    pages = L.WEB_LIMITS.max_populated_pages + 1
    source = MAP.format(n=pages) + f"memset(p, 'x', {pages} * page_size);\n"
    body = client.post("/api/run", json={"source": source}).json()
    assert "max_populated_pages" in body["error"]
    page = client.get("/play?" + urlencode({"source": source}))
    assert page.status_code == 200 and "max_populated_pages" in page.text


def test_hostile_sources_never_500(client: TestClient) -> None:
    for source in (
        "\ud800",
        "\x00" * 100,
        "(" * 5000 + "1" + ")" * 5000 + ";",
        "char *p = " + "-" * 10000 + "1;",
        "x" * L.MAX_SOURCE,
        "pid_t c = fork();\n" * 40,
        "char *p = mmap(NULL, 0xffffffffffffffff, 3, 0x22, -1, 0);\nmemset(p, 1, 0xffffffffffffffff);",
    ):
        for response in (
            client.post(
                "/api/run",
                content=json.dumps({"source": source}),  # ASCII: a lone surrogate as \\ud800
                headers={"Content-Type": "application/json"},
            ),
            client.get("/play", params={"source": source.encode("utf-8", "replace").decode()}),
        ):
            assert response.status_code < 500, (source[:40], response.text[:300])
