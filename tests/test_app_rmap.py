"""Every gallery scenario opens under either rmap model (?rmap=), and a page
under the COW-context proposal says it is not a kernel anyone runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient
from selectolax.lexbor import LexborHTMLParser, LexborNode

from app.main import create_app
from app.runs import gallery
from app.share import decode_token
from app.warmup import Link
from engine.accounting import metadata
from engine.cow_context import WALK_EXCLUSIVE_STOP
from engine.gallery import GalleryEntry, find
from engine.invariants import check
from engine.mm_types import State
from engine.scenario.parse import parse
from engine.sim.simulation import run_source
from engine.variants import apply


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


# --- the picture, the counts and the marks under cow_context ------------------------

CHAIN = "cow_fork_chain_exits"


def _state(slug: str, step: int, rmap: str | None = None) -> State:
    source = entry(slug).source if rmap is None else apply(f"rmap-{rmap}", entry(slug).source)
    return run_source(source).steps[step].state


def entry(slug: str) -> GalleryEntry:
    found = find(slug)
    assert found is not None
    return found


def _step_where(slug: str, want: Callable[[State], bool]) -> int:
    run = run_source(entry(slug).source)
    return next(i for i, s in enumerate(run.steps) if want(s.state))


def test_the_picture_draws_contexts_their_tree_and_exited_ones(client: TestClient) -> None:
    step = _step_where(CHAIN, lambda s: any(c.mm is None for c in s.cow_contexts.values()))
    state = _state(CHAIN, step)
    page = LexborHTMLParser(client.get(f"/scenarios/{CHAIN}?step={step}").text)
    svg = page.css_first("svg.picture")
    nodes = {int(n.attributes["data-cow-context"] or 0): n for n in svg.css("g.tnode")}
    assert set(nodes) == set(state.cow_contexts)
    assert not svg.css("[data-anon-vma]")
    for ident, ctx in state.cow_contexts.items():
        node = nodes[ident]
        assert f"cow_context#{ident}" in node.text()
        exited = "exited" in (node.attributes["class"] or "").split()
        assert exited == (ctx.mm is None)
        assert ("exited" in node.text()) == (ctx.mm is None)  # said, not only drawn
    forks = {p.attributes["id"] for p in svg.css("path.tedge.parent")}
    want = {f"pic-fork-{c.id}-{c.parent}" for c in state.cow_contexts.values() if c.parent}
    assert forks == want
    # a VMA names its faulted flag, never an anon_vma for a context id
    for bar in svg.css("g.pvma"):
        assert "anon_vma #" not in bar.text() and "anon_vma#" not in bar.text()


def test_folios_take_the_colour_of_the_context_they_point_at(client: TestClient) -> None:
    step = _step_where(CHAIN, lambda s: len({f.mapping for f in s.folios.values()}) > 1)
    state = _state(CHAIN, step)
    svg = LexborHTMLParser(client.get(f"/scenarios/{CHAIN}?step={step}").text).css_first(
        "svg.picture"
    )

    def colour(node: LexborNode) -> str:
        return next(c for c in (node.attributes["class"] or "").split() if c.startswith("av-"))

    nodes = {n.attributes["data-cow-context"]: colour(n) for n in svg.css("g.tnode")}
    folios = svg.css("g.pfolio")
    assert folios
    for block in folios:
        folio = state.folios[int(block.attributes["data-folio"] or 0)]
        assert colour(block) == nodes[str(folio.mapping)]


def test_remap_entries_sit_under_the_context_with_their_offsets(client: TestClient) -> None:
    slug = "cow_fragmentation"
    step = _step_where(slug, lambda s: any(c.remaps for c in s.cow_contexts.values()))
    state = _state(slug, step)
    svg = LexborHTMLParser(client.get(f"/scenarios/{slug}?step={step}").text).css_first(
        "svg.picture"
    )
    boxes = svg.css("g.tremap")
    entries = [(c, r) for c in state.cow_contexts.values() for r in c.remaps]
    assert len(boxes) == len(entries)
    assert {(b.attributes["id"], b.attributes["data-cow-context"]) for b in boxes} == {
        (f"pic-remap{c.id}-{r.first:x}", str(c.id)) for c, r in entries
    }
    texts = " ".join(b.text() for b in boxes)
    for _, r in entries:
        assert f"remap {r.first:x}-{r.last:x}" in texts
        assert all(f"{o:+#x}" in texts for o in r.offsets)
    assert svg.css("path.tedge.remap") and svg.css("path.tedge.offset")


def test_a_miss_is_marked_unfinished_with_the_branchs_comment(client: TestClient) -> None:
    slug = "cow_fragmentation"
    step = _step_where(
        slug,
        lambda s: any(v.unfinished is WALK_EXCLUSIVE_STOP for v in check(s) if v.kind == "rmap"),
    )
    page = LexborHTMLParser(client.get(f"/scenarios/{slug}?step={step}").text)
    mark = page.css_first("svg.picture g.unfinished-mark")
    assert mark is not None
    assert WALK_EXCLUSIVE_STOP.where in mark.text()
    assert WALK_EXCLUSIVE_STOP.comment is not None
    drawn = " ".join(t.text() for t in mark.css("text.mark-comment"))
    assert " ".join(drawn.split()).strip('"') == WALK_EXCLUSIVE_STOP.comment
    # the broken link says which mark, in words beside its number
    assert "⚑1 unfinished in the proposal" in page.css_first("svg.picture g.note").text()
    listed = page.css_first(".violations .unfinished")
    assert listed is not None and listed.attributes["data-unfinished"] == WALK_EXCLUSIVE_STOP.where
    assert listed.css_first("q").text() == WALK_EXCLUSIVE_STOP.comment
    # the same in the twins: one context
    twin = client.get(f"/scenarios/{slug}.json?step={step}").json()["page"]
    assert WALK_EXCLUSIVE_STOP._asdict() in [v["unfinished"] for v in twin["violations"]]
    txt = client.get(f"/scenarios/{slug}.txt?step={step}").text
    assert f"UNFINISHED IN THE PROPOSAL: {WALK_EXCLUSIVE_STOP.where}" in txt
    assert max(len(line) for line in txt.splitlines()[1:]) <= 75


def test_an_event_at_an_unfinished_place_carries_its_mark(client: TestClient) -> None:
    run = run_source(entry(CHAIN).source)
    step, event = next(
        (i, e) for i, s in enumerate(run.steps) for e in s.events if e.unfinished is not None
    )
    assert event.unfinished is not None
    page = LexborHTMLParser(client.get(f"/scenarios/{CHAIN}?step={step}").text)
    marked = page.css(".events .unfinished")
    assert [m.attributes["data-unfinished"] for m in marked] == [event.unfinished.where]
    twin = client.get(f"/scenarios/{CHAIN}.json?step={step}").json()["page"]
    assert [e["unfinished"] for e in twin["events"] if e["unfinished"]] == [
        event.unfinished._asdict()
    ]


def test_counts_per_state_and_model(client: TestClient) -> None:
    step = _step_where(CHAIN, lambda s: any(c.mm is None for c in s.cow_contexts.values()))
    m = metadata(_state(CHAIN, step))
    page = LexborHTMLParser(client.get(f"/scenarios/{CHAIN}?step={step}").text)
    table = page.css_first('.counts-table[data-rmap-model="cow_context"]')
    assert table is not None

    def cell(key: str) -> str:
        node = table.css_first(f'td[data-count="{key}"]')
        assert node is not None, key
        return node.text()

    assert cell("cow_contexts") == f"{m.cow_contexts} ({m.exited_cow_contexts} exited)"
    assert cell("remap_entries").startswith(f"{m.remap_entries} (")
    assert cell("bytes") == str(m.bytes)
    assert table.css_first('td[data-count="anon_vmas"]') is None
    assert m.walks
    for cost, folios in m.walks:
        assert f"{folios} folio" in cell("walks")
        assert f"{cost.offsets} offsets, {cost.rmap_objects} contexts" in cell("walks")
    assert "computed" in page.css_first(".sizes").text()
    plain = LexborHTMLParser(client.get(f"/scenarios/{CHAIN}?step={step}&rmap=anon_vma").text)
    assert plain.css_first('.counts-table[data-rmap-model="anon_vma"] td[data-count="anon_vmas"]')


def test_the_compare_view_counts_each_model_and_marks_what_differs(client: TestClient) -> None:
    slug = "cow_fork_then_mremap"
    page = LexborHTMLParser(
        client.get(f"/compare/{slug}?v=rmap-anon_vma&v=rmap-cow_context&stmt=6").text
    )
    tables = page.css("section.side .counts-table")
    assert [t.attributes["data-rmap-model"] for t in tables] == ["anon_vma", "cow_context"]
    assert tables[1].css_first('tr.differs td[data-count="cow_contexts"]') is not None
    assert (
        page.css_first(".rmap-model") is not None
        and "a4ac1966" in page.css_first(".rmap-model").text()
    )
    text = client.get(f"/compare/{slug}.txt?v=rmap-anon_vma&v=rmap-cow_context&stmt=6").text
    assert "counts (anon_vma): VMAs" in text and "counts (cow_context): VMAs" in text
    assert max(len(line) for line in text.splitlines()) <= 75


def test_every_scenario_page_and_card_offers_both_models(client: TestClient) -> None:
    gallery_page = LexborHTMLParser(client.get("/").text)
    cards = gallery_page.css("li.card")
    assert len(cards) == len(gallery())
    for card in cards:
        choice = card.css_first(".rmap-choice")
        assert choice is not None
        own = choice.attributes["data-rmap-model"]
        other = "anon_vma" if own == "cow_context" else "cow_context"
        hrefs = [a.attributes["href"] or "" for a in choice.css("a")]
        assert any(h.endswith(f"?rmap={other}") for h in hrefs)
        assert any("v=rmap-anon_vma&v=rmap-cow_context" in h for h in hrefs)
    page = LexborHTMLParser(client.get(f"/scenarios/{CHAIN}").text)
    link = page.css_first("a[data-compare-models]")
    assert link is not None
    both = client.get(link.attributes["href"] or "")
    assert both.status_code == 200
    assert len(LexborHTMLParser(both.text).css("section.side")) == 2


# --- the model of /play, short links and POST /api/run ------------------------------

PLAIN = entry("cow_fork_then_mremap").source.replace("// @rmap cow_context\n", "")


def test_play_runs_under_the_chosen_model(client: TestClient) -> None:
    assert parse(PLAIN).rmap_model is None
    page = LexborHTMLParser(
        client.get("/play", params={"source": PLAIN, "rmap": "cow_context"}).text
    )
    chosen = page.css_first("#rmap option[selected]")
    assert chosen is not None and chosen.attributes["value"] == "cow_context"
    assert page.css_first("svg.picture [data-cow-context]") is not None
    assert "a4ac1966" in page.css_first(".rmap-model").text()
    assert any("rmap=cow_context" in (a.attributes["href"] or "") for a in page.css("#stepnav a"))
    plain = LexborHTMLParser(client.get("/play", params={"source": PLAIN}).text)
    assert plain.css_first("svg.picture [data-cow-context]") is None
    assert plain.css_first(".rmap-model") is None
    bad = client.get("/play", params={"source": PLAIN, "rmap": "nope"})
    assert bad.status_code == 422 and "rmap" in bad.text


def test_the_editor_posts_the_model_into_a_self_contained_link(client: TestClient) -> None:
    answer = client.post(
        "/play", data={"source": PLAIN, "rmap": "cow_context"}, follow_redirects=False
    )
    assert answer.status_code == 303
    token = answer.headers["location"].removeprefix("/play?s=")
    assert decode_token(unquote(token)).options.rmap_model == "cow_context"
    page = LexborHTMLParser(client.get(answer.headers["location"]).text)
    assert page.css_first("svg.picture [data-cow-context]") is not None


def test_a_short_link_stores_and_reproduces_the_model(client: TestClient) -> None:
    made = client.post(
        "/api/share", json={"source": PLAIN, "options": {"rmap_model": "cow_context"}}
    )
    assert made.status_code == 200
    ident = made.json()["id"]
    plain = client.post("/api/share", json={"source": PLAIN}).json()["id"]
    assert plain != ident  # the model is part of what is stored
    twin = client.get(f"/s/{ident}.json").json()
    assert twin["options"] == {"rmap_model": "cow_context"}
    assert twin["scenario"]["rmap_model"] == "cow_context"
    assert client.get(f"/s/{plain}.json").json()["scenario"]["rmap_model"] == "anon_vma"
    page = LexborHTMLParser(client.get(f"/s/{ident}").text)
    assert page.css_first("[data-rmap-model]").text() == "cow_context"
    assert page.css_first("svg.picture [data-cow-context]") is not None
    # the short-link form and the token agree on the same id
    form = client.post(
        "/share", data={"source": PLAIN, "rmap": "cow_context"}, follow_redirects=False
    )
    assert form.headers["location"] == f"/s/{ident}"
    # an option equal to the source's own line changes nothing: one scenario, one link
    own = entry("cow_fork_then_mremap").source
    same = client.post("/api/share", json={"source": own, "options": {"rmap_model": "cow_context"}})
    assert same.json()["id"] == client.post("/api/share", json={"source": own}).json()["id"]


def test_api_run_takes_the_model(client: TestClient) -> None:
    under = client.post("/api/run", json={"source": PLAIN, "rmap_model": "cow_context"})
    assert under.status_code == 200 and under.json()["rmap_model"] == "cow_context"
    assert client.post("/api/run", json={"source": PLAIN}).json()["rmap_model"] == "anon_vma"
    bad = client.post("/api/run", json={"source": PLAIN, "rmap_model": "nope"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "rmap_model"]
    schema = client.get("/openapi.json").json()["components"]["schemas"]["RunRequest"]
    field = schema["properties"]["rmap_model"]
    assert "a4ac1966" in field["description"]
    assert "cow_context" in str(field) and "anon_vma" in str(field)


def test_a_new_short_links_pages_are_warmed_under_its_model(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[Link] = []
    warmup = client.app.state.warmup  # type: ignore[attr-defined]
    monkeypatch.setattr(warmup, "add_link", queued.append)
    client.post("/api/share", json={"source": PLAIN, "options": {"rmap_model": "cow_context"}})
    assert [link.source for link in queued] == [apply("rmap-cow_context", PLAIN)]
