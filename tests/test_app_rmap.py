"""Every gallery scenario opens under either rmap model (?rmap=), and a page
under the COW-context proposal says it is not a kernel anyone runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from selectolax.lexbor import LexborHTMLParser

from app.main import create_app


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(tmp_path / "data"))
    with TestClient(create_app()) as c:
        yield c


def test_a_scenario_opens_under_the_proposal_and_back(client: TestClient) -> None:
    page = LexborHTMLParser(client.get("/scenarios/move_away_and_back?rmap=cow_context").text)
    note = page.css_first(".rmap-model")
    assert note is not None and "a4ac1966" in note.text()
    # stepping keeps the model; the switch leads back to Linux 6.18
    assert any("rmap=cow_context" in (a.attributes["href"] or "") for a in page.css("#stepnav a"))
    switch = [a for a in page.css("a") if a.text().strip() == "rmap model anon_vma"]
    assert switch and switch[0].attributes["href"] == "/scenarios/move_away_and_back?rmap=anon_vma"
    plain = LexborHTMLParser(client.get("/scenarios/move_away_and_back").text)
    assert plain.css_first(".rmap-model") is None


def test_the_model_reaches_the_json_twin_and_bad_models_are_named(client: TestClient) -> None:
    twin = client.get("/scenarios/cow_fragmentation.json?step=1000").json()
    under = client.get("/scenarios/cow_fragmentation.json?step=1000&rmap=anon_vma").json()
    assert twin != under
    bad = client.get(
        "/scenarios/move_away_and_back?rmap=nope", headers={"accept": "application/json"}
    )
    assert bad.status_code == 422 and "rmap" in bad.text


def test_compare_puts_one_scenario_under_both_models(client: TestClient) -> None:
    page = client.get("/compare/move_away_and_back?v=rmap-anon_vma&v=rmap-cow_context&stmt=3")
    assert page.status_code == 200
    assert "rmap model anon_vma: Linux 6.18" in page.text
    assert "rmap model cow_context: the COW-context proposal" in page.text
