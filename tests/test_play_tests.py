"""/play for kselftest harness files: the pasted file, its tests, one test stepped.

POST /play takes the editor's text; a harness file goes to its short link,
which lists the tests with their verdicts; `test=` steps through one, each
assertion at its line with both values; the .json and .txt twins and the
short link's page answer for one test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from app import limits as L
from app.main import create_app
from tests.support.data import two_tests

SOURCE = two_tests()
FAILING = "merge.plain_move_merges_too"
FAILED_CHECK = (
    "ASSERT_EQ(self->procmap.query.vma_end, (unsigned long)ptr + 10 * ps): "
    "0x7ffff7fdf000 == 0x7ffff7fe4000 failed"
)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path / "data"))
    with TestClient(create_app()) as c:
        yield c


def pasted(client: TestClient, source: str = SOURCE) -> str:
    """Where POST /play sends the pasted text."""
    r = client.post("/play", data={"source": source, "policy": ""}, follow_redirects=False)
    assert r.status_code == 303, r.text
    location: str = r.headers["location"]
    return location


def test_a_pasted_harness_file_goes_to_its_short_link_and_lists_its_tests(
    client: TestClient,
) -> None:
    where = pasted(client)
    assert where.startswith("/s/") and "?" not in where
    assert pasted(client) == where, "the same text, the same link"
    doc = HTMLParser(client.get(where).text)
    rows = doc.css(".test-list li")
    assert [r.css_first("a").text() for r in rows] == ["merge.relocated_move_merges", FAILING]
    assert [r.css_first(".verdict").text() for r in rows] == ["ok", "FAIL"]
    assert rows[0].attributes.get("aria-current") == "true", "the first test is shown"
    assert "1 passed, 1 failed, 0 skipped" in doc.css_first("#tests-title").text()


def test_a_scenario_posted_to_play_keeps_its_self_contained_link(client: TestClient) -> None:
    where = pasted(
        client, "char *p = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
    )
    assert where.startswith("/play?s=v1.")
    assert client.get(where).status_code == 200


def test_one_test_steps_and_shows_each_assertion_at_its_line(client: TestClient) -> None:
    where = pasted(client)
    doc = HTMLParser(client.get(f"{where}?test={FAILING}").text)
    current = doc.css_first(".test-list li[aria-current]")
    assert current.css_first("a").text() == FAILING
    checks = doc.css(".checks li[data-phase=body]")
    assert len(doc.css(".checks li[data-phase=setup]")) == 2, "merge.c's fixture asserts too"
    assert [c.attributes["class"] for c in checks] == ["ok"] * 4 + ["fail"]
    failed = checks[-1]
    assert failed.css_first("a").text() == "line 42"
    assert failed.css_first("code").text() == FAILED_CHECK
    step = int(parse_qs(urlsplit(failed.css_first("a").attributes["href"] or "").query)["step"][0])

    at = HTMLParser(client.get(f"{where}?test={FAILING}&step={step}").text)
    line = next(n for n in at.css("#source .line") if n.css_first(".ln").text() == "42")
    assert "current" in (line.attributes["class"] or ""), "the failed assertion read this step"
    assert line.css_first(".check.fail").text() == FAILED_CHECK
    numbers = [int(n.css_first(".ln").text()) for n in at.css("#source .line")]
    assert numbers[0] == 26 and numbers[-1] == 43, "the test's own lines, numbered as in the file"


def test_the_twins_answer_for_one_test(client: TestClient) -> None:
    where = pasted(client)
    doc = client.get(f"{where}.json?test=plain_move_merges_too").json()
    assert doc["test"] == FAILING
    assert doc["scenario"]["result"] == "fail"
    assert doc["scenario"]["assertions"] == {"passed": 8, "failed": 1}  # with the fixture's
    assert [t["result"] for t in doc["tests"]] == ["pass", "fail"]
    (failed,) = [c for c in doc["checks"] if not c["passed"]]
    assert failed["text"] == FAILED_CHECK and failed["line"] == 42
    assert doc["checks"][-1]["phase"] == "teardown", "a failed ASSERT_ still runs the teardown"
    step = failed["step"]
    text = client.get(f"{where}.txt?test={FAILING}&step={step}").text
    assert text.splitlines()[0].endswith(f"{where}?test={FAILING}&step={step}")
    assert f"{FAILING}: fail" in text
    assert "line 42: ASSERT_EQ(" in text


def test_the_short_link_form_keeps_the_test(client: TestClient) -> None:
    r = client.post(
        "/share", data={"source": SOURCE, "test": FAILING, "step": "4"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert r.headers["location"].endswith(f"?test={FAILING}&step=4")
    doc = HTMLParser(client.get(r.headers["location"]).text)
    assert doc.css_first(".test-list li[aria-current] a").text() == FAILING


def test_a_test_the_file_lacks_is_a_404_naming_those_it_has(client: TestClient) -> None:
    where = pasted(client)
    r = client.get(f"{where}.json?test=nope")
    assert r.status_code == 404
    assert "merge.relocated_move_merges" in r.text and FAILING in r.text
    scenario = pasted(client, "char *p = mmap(NULL, page_size, 3, 0x22, -1, 0);\n")
    assert client.get(f"{scenario}&test=x").status_code == 404


def test_a_whole_selftest_file_fits_and_the_limits_are_named(client: TestClient) -> None:
    big = SOURCE + "\n" + "/* " + "x" * 100_000 + " */\n"  # a 67 KB merge.c, with headroom
    assert client.get(pasted(client, big) + f"?test={FAILING}").status_code == 200
    over = "/*" + "x" * L.MAX_SHARED_SOURCE_BYTES + "*/"
    r = client.post("/play", data={"source": over}, follow_redirects=False)
    assert r.status_code == 422 and "MAX_SHARED_SOURCE_BYTES" in r.text
    r = client.post(
        "/play",
        content=b"source=" + b"x" * L.MAX_SHARE_BODY_BYTES,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert "MAX_SHARE_BODY_BYTES" in r.text or "MAX_BODY_BYTES" in r.text  # the same size
    r = client.get(f"/play?test={'x' * (L.MAX_TEST_NAME + 1)}")
    assert r.status_code == 422


def test_api_run_answers_a_harness_file_as_run_json_does(client: TestClient) -> None:
    doc = client.post("/api/run", json={"source": SOURCE}).json()
    assert [(t["name"], t["result"]) for t in doc["tests"]] == [
        ("merge.relocated_move_merges", "pass"),
        (FAILING, "fail"),
    ]
    assert doc["tests"][1]["assertions"] == {"passed": 8, "failed": 1}
