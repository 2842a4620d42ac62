"""The web app's routes, read through a real HTML parser, as a reviewer would read the pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from selectolax.lexbor import LexborNode as Node

from app.limits import COMPARE_MAX_VARIANTS, WEB_LIMITS
from app.main import create_app
from app.runs import api_json, gallery
from app.views.gallery import PATHS
from engine.invariants import RmapMiss
from engine.sim.limits import LimitExceeded
from engine.sim.policy import POLICIES
from engine.sim.simulation import run_source
from engine.variants import VARIANTS

MAINLINE = {
    "merge_on_mprotect",
    "faulted_move_no_merge",
    "unfaulted_move_merges",
    "move_away_and_back",
    "fork_and_cow",
    "dontunmap",
    "multi_vma_move",
    "shrink_and_grow",
}
BROKEN = (
    "char *p = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\nmunmap(p,;\n"
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(path))
    return path


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app()) as c:
        yield c


def html(response: object) -> HTMLParser:
    return HTMLParser(response.text)  # type: ignore[attr-defined]


def text(node: Node | None) -> str:
    assert node is not None
    return " ".join(node.text(deep=True).split())


def count(doc: HTMLParser, name: str) -> int:
    return int(text(doc.css_first(f'td[data-count="{name}"]')))


def last_step(client: TestClient, slug: str) -> int:
    return int(
        client.get(f"/scenarios/{slug}.json").json()["scenario"]["steps"][-1]["inner"][-1]["index"]
    )


# --- the gallery -------------------------------------------------------------


def test_gallery_links_every_packaged_scenario_with_title_and_note(client: TestClient) -> None:
    doc = html(client.get("/"))
    cards = doc.css("section.path ol.gallery li.card")
    links = {a.attributes["href"] for a in doc.css("li.card h3 a")}
    assert {href.removeprefix("/scenarios/") for href in links} >= MAINLINE
    assert len(cards) == len(gallery())
    for card in cards:
        assert text(card.css_first("h3")) and text(card.css_first("p.see"))
        slug = card.css_first("h3 a").attributes["href"].removeprefix("/scenarios/")
        if slug in MAINLINE:
            assert "()" in text(card.css_first("details p")), "each note names kernel functions"


def test_gallery_paths_have_thumbnails_of_the_key_moment(client: TestClient) -> None:
    doc = html(client.get("/"))
    titles = [text(h) for h in doc.css("section.path > h2")]
    assert titles[: len(PATHS)] == [p.title for p in PATHS]
    assert "far too fragile" in text(doc.css_first(".story"))
    for card in doc.css("li.card"):
        src = card.css_first("img").attributes["src"] or ""
        slug = card.css_first("h3 a").attributes["href"].removeprefix("/scenarios/")
        assert src.startswith(f"/scenarios/{slug}/picture.svg?step=")
    # the pinned folio's key moment is where rmap first loses it, in the open
    pinned = doc.css_first('img[src^="/scenarios/relocate_pinned_folio/"]').attributes["src"]
    step = int((pinned or "").rsplit("=", 1)[1])
    svg = picture_of(client, f"/scenarios/relocate_pinned_folio?step={step}")
    assert svg.css("g.note") and not svg.css("g.note.locked")
    before = picture_of(client, f"/scenarios/relocate_pinned_folio?step={step - 1}")
    assert not before.css("g.note") or before.css("g.note.locked")


@pytest.mark.parametrize("slug", [e.slug for e in gallery()])
def test_every_scenario_renders_first_and_last_step(client: TestClient, slug: str) -> None:
    for step in (0, 10**6):
        doc = html(client.get(f"/scenarios/{slug}?step={step}"))
        assert doc.css_first("#state svg.vma-map") is not None
        assert doc.css_first("#source .line.current") is not None


def test_gallery_twins(client: TestClient) -> None:
    entries = client.get("/index.json").json()
    assert {e["slug"] for e in entries} >= MAINLINE
    assert client.get("/index.txt").headers["content-type"].startswith("text/plain")


# --- the scenario page -----------------------------------------------------------


def test_first_step_highlights_the_first_statement_and_disables_back(client: TestClient) -> None:
    doc = html(client.get("/scenarios/merge_on_mprotect"))
    current = doc.css("#source .line.current")
    assert len(current) == 1 and current[0].attributes["aria-current"] == "step"
    assert "mmap(" in text(current[0])
    assert doc.css_first('#stepnav span[data-nav="prev"]').attributes["aria-disabled"] == "true"
    forward = doc.css_first('#stepnav a[data-nav="next"]')
    assert forward.attributes["href"] == "/scenarios/merge_on_mprotect?step=1"
    assert forward.attributes["hx-get"] == forward.attributes["href"]
    assert doc.css_first("#state").attributes["data-step"] == "0"
    assert doc.css_first("label[for=step-range]") is not None


def test_mprotect_splits_then_merges(client: TestClient) -> None:
    """
    # 01234
    # AAAAA     faulted
    # ABBCC     mprotect(p + 2 pages, 1 page, PROT_READ): split in three
    # AAAAA     mprotect back: merged
    """
    doc = client.get("/scenarios/merge_on_mprotect.json").json()
    statements = doc["scenario"]["steps"]
    split_end = statements[2]["inner"][-1]["index"]
    merged_end = statements[3]["inner"][-1]["index"]
    split = html(client.get(f"/scenarios/merge_on_mprotect?step={split_end}"))
    merged = html(client.get(f"/scenarios/merge_on_mprotect?step={merged_end}"))
    assert count(split, "vmas") == 3
    assert len(split.css("svg.vma-map g.vma")) == 3
    assert count(merged, "vmas") == 1
    assert len(merged.css("svg.vma-map g.vma")) == 1
    rows = merged.css("table.folios tbody tr")
    assert len(rows) == 5
    assert all(text(r.css_first("td.check")) == "✓ yes" for r in rows)


def test_step_past_the_end_is_the_last_step(client: TestClient) -> None:
    last = last_step(client, "merge_on_mprotect")
    doc = html(client.get("/scenarios/merge_on_mprotect?step=99999"))
    assert doc.css_first("#state").attributes["data-step"] == str(last)
    assert doc.css_first('#stepnav span[data-nav="next"]') is not None


def test_changes_are_labelled_not_only_coloured(client: TestClient) -> None:
    doc = client.get("/scenarios/merge_on_mprotect.json").json()
    fault = next(
        i
        for s in doc["scenario"]["steps"]
        for i in s["inner"]
        if "folio:1" in " ".join(i["created"]) or any(r.startswith("folio:") for r in i["created"])
    )
    page = html(client.get(f"/scenarios/merge_on_mprotect?step={fault['index']}"))
    created = page.css("ul.changes li.created")
    assert created and all("+ created" in text(li) for li in created)
    assert any("+ new" in text(r) for r in page.css("table.folios tbody tr.created"))


def test_before_and_after_the_whole_statement(client: TestClient) -> None:
    doc = client.get("/scenarios/merge_on_mprotect.json").json()
    inner = doc["scenario"]["steps"][2]["inner"]
    step = inner[1]["index"]
    before = html(client.get(f"/scenarios/merge_on_mprotect?step={step}&view=before"))
    after = html(client.get(f"/scenarios/merge_on_mprotect?step={step}&view=after"))
    assert count(before, "vmas") == 1
    assert count(after, "vmas") == 3
    assert before.css_first('.viewtoggle a[aria-current="page"]').text() == "Before the statement"
    assert after.css("ul.changes li.created")


def test_unknown_scenario_is_404(client: TestClient) -> None:
    assert client.get("/scenarios/no_such_thing").status_code == 404
    assert client.get("/scenarios/no_such_thing.json").status_code == 404


def test_fork_shows_both_processes_and_the_anon_vma_hierarchy(client: TestClient) -> None:
    last = last_step(client, "fork_and_cow")
    doc = html(client.get(f"/scenarios/fork_and_cow?step={last}"))
    lanes = [text(t) for t in doc.css("svg.vma-map text.lane-name")]
    assert lanes == ["main", "child"]
    nodes = doc.css("svg.anon-graph g.node")
    assert len(nodes) == 2
    assert doc.css("svg.anon-graph path.edge.parent")
    assert len(doc.css("svg.anon-graph path.edge.chain")) == count(doc, "anon_vma_chains")


def test_scenario_twins(client: TestClient) -> None:
    doc = client.get("/scenarios/merge_on_mprotect.json?step=3").json()
    assert doc["page"]["index"] == 3
    assert {"line", "source", "process", "result", "value", "maps"} <= set(
        doc["scenario"]["steps"][0]
    )
    plain = client.get("/scenarios/merge_on_mprotect.txt?step=3")
    assert plain.headers["content-type"].startswith("text/plain")
    assert "mmap(" in plain.text


# --- htmx --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, False),
        ({"HX-Request": "true"}, True),
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
    ],
    ids=["plain load", "htmx swap", "history restore"],
)
@pytest.mark.parametrize("page", ["/scenarios/merge_on_mprotect?step=4", "/play?step=4"])
def test_htmx_matrix(
    client: TestClient, page: str, headers: dict[str, str], fragment: bool
) -> None:
    response = client.get(page, headers=headers)
    assert response.status_code == 200
    assert "HX-Request" in response.headers["vary"]
    doc = html(response)
    assert doc.css_first("#state").attributes["data-step"] == "4"
    if fragment:
        assert "<html" not in response.text
        assert doc.css_first("h1") is None
        assert doc.css_first("#stepnav").attributes["hx-swap-oob"] == "true"
        assert doc.css_first("#source").attributes["hx-swap-oob"] == "true"
        assert "hx-swap-oob" not in doc.css_first("#state").attributes
        assert response.headers["hx-push-url"] == page
    else:
        assert doc.css_first("html") is not None and doc.css_first("h1") is not None
        assert "hx-swap-oob" not in doc.css_first("#stepnav").attributes
        assert "hx-push-url" not in response.headers
        assert doc.css_first('script[src^="/static/vendor/htmx-2.0."]') is not None


def test_pages_have_no_inline_scripts_or_handlers(client: TestClient) -> None:
    for url in ["/", "/scenarios/fork_and_cow?step=5", "/play", "/compare/merge_on_mprotect"]:
        doc = html(client.get(url))
        assert all("src" in s.attributes for s in doc.css("script"))
        for node in doc.css("*"):
            assert not any(a.startswith("on") for a in node.attributes), (url, node.tag)


def test_compare_fragment(client: TestClient) -> None:
    response = client.get("/compare/merge_on_mprotect?stmt=2", headers={"HX-Request": "true"})
    doc = html(response)
    assert doc.css_first("h1") is None
    assert doc.css_first("#comparison").attributes["data-stmt"] == "2"


# --- the playground -------------------------------------------------------------------


def test_play_keeps_the_source_in_the_url(client: TestClient) -> None:
    source = "char *p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\np[0] = 'x';\n"
    doc = html(client.get("/play?" + urlencode({"source": source, "step": 1})))
    assert text(doc.css_first("textarea#source-editor")) == " ".join(source.split())
    assert doc.css_first("label[for=source-editor]") is not None
    forward = doc.css_first('#stepnav a[data-nav="next"]').attributes["href"]
    assert forward.startswith("/play?") and urlencode({"source": source}) in forward
    assert doc.css_first("#scrubber input[type=hidden][name=source]").attributes["value"] == source


def test_play_shows_a_broken_scenario_at_its_line_and_column(client: TestClient) -> None:
    response = client.get("/play?" + urlencode({"source": BROKEN}))
    doc = html(response)
    error = text(doc.css_first("#error"))
    assert error.startswith("Line 2, column")
    assert doc.css_first("textarea").attributes["aria-invalid"] == "true"
    bad = doc.css("#source .line.has-error")
    assert len(bad) == 1 and "munmap" in text(bad[0])
    assert doc.css_first("#source .caret") is not None
    assert client.get("/play.json?" + urlencode({"source": BROKEN})).status_code == 422


TYPO = "char *p = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"


@pytest.mark.parametrize("options", [{}, {"policy": "split"}, {"rmap": "cow_context"}])
def test_a_wrong_directive_is_shown_at_its_line_not_a_500(
    client: TestClient, options: dict[str, str]
) -> None:
    source = TYPO + "// @policy spilt\n"
    query = urlencode({"source": source, **options})
    response = client.get("/play?" + query)
    assert response.status_code == 200  # the editor, with the error at its line
    doc = html(response)
    error = text(doc.css_first("#error"))
    assert error.startswith("Line 2, column 12") and "unknown RELOCATE_ANON policy 'spilt'" in error
    bad = doc.css("#source .line.has-error")
    assert len(bad) == 1 and "@policy spilt" in text(bad[0])
    twin = client.get("/play.json?" + query)
    assert twin.status_code == 422 and "spilt" in twin.text
    api = client.post("/api/run", json={"source": source})
    assert api.status_code == 422
    assert {k: api.json()["detail"][0][k] for k in ("line", "col")} == {"line": 2, "col": 12}
    made = client.post(
        "/api/share", json={"source": source, "options": {"policy": options.get("policy")}}
    )
    assert made.status_code == 200, made.text
    assert client.get(made.json()["url"] + ".json").status_code == 422


# --- compare ------------------------------------------------------------------------


def test_compare_shows_two_variants_side_by_side(client: TestClient) -> None:
    doc = html(client.get("/compare/faulted_move_no_merge?v=original&v=flags&stmt=99"))
    sides = doc.css("section.side")
    assert [text(s.css_first("h2")).split()[0] for s in sides] == ["original", "flags"]
    assert all(s.css_first("svg.picture") for s in sides)
    checked = [n.attributes["value"] for n in doc.css('input[name="v"][checked]')]
    assert checked == ["original", "flags"]
    assert text(doc.css_first("#diff-title")).startswith(("=", "≠"))


def test_compare_every_policy_in_lockstep(client: TestClient) -> None:
    policies = [f"policy-{p}" for p in POLICIES]
    assert len(policies) == COMPARE_MAX_VARIANTS
    base = "/compare/relocate_gup_race_policies?" + urlencode([("v", p) for p in policies])
    after = html(client.get(base + "&stmt=6"))
    sides = after.css("section.side")
    assert [text(s.css_first("h2")).split()[0] for s in sides] == policies
    assert all(s.css_first("svg.picture") for s in sides)
    # the policies differ after the pinned move: marked against the first column
    assert text(after.css_first("#diff-title")).startswith("≠")
    assert after.css("section.side tr.differs td")
    # the first inner step of the move is the same function in every run
    first = html(client.get(base + "&stmt=6&step=0"))
    assert "In lockstep" in text(first.css_first(".lockstep"))
    assert first.css_first("#comparison").attributes["data-step"] == "0"
    forward = first.css_first('#stmtnav a[data-nav="next"]').attributes["href"] or ""
    assert "stmt=6" in forward and "step=1" in forward


def test_compare_limits_its_variants(client: TestClient) -> None:
    many = urlencode([("v", v) for v in list(VARIANTS)[: COMPARE_MAX_VARIANTS + 1]])
    r = client.get(f"/compare/merge_on_mprotect?{many}", headers={"Accept": "application/json"})
    assert r.status_code == 422 and "COMPARE_MAX_VARIANTS" in r.text


def test_compare_unknown_variant_is_422(client: TestClient) -> None:
    assert client.get("/compare/merge_on_mprotect?v=nonsense").status_code == 422


def test_compare_twins(client: TestClient) -> None:
    doc = client.get("/compare/merge_on_mprotect.json?stmt=1").json()
    assert [v["variant"] for v in doc["variants"]] == ["original", "flags"]
    assert doc["page"]["index"] == 1
    body = client.get("/compare/merge_on_mprotect.txt").text
    assert body.startswith("mprotect")
    assert all(len(line) <= 75 for line in body.splitlines())


# --- the API ---------------------------------------------------------------------------


def test_api_run_returns_the_cli_json(client: TestClient) -> None:
    source = gallery()[0].source
    response = client.post("/api/run", json={"source": source})
    assert response.status_code == 200
    steps = response.json()["steps"]
    assert steps and {"line", "source", "process", "result", "value", "maps"} <= set(steps[0])


FAULT = (
    "char *p = mmap(NULL, {n} * page_size, PROT_READ | PROT_WRITE,"
    " MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\nmemset(p, 1, {n} * page_size);\n"
)


def test_api_run_summarises_what_steps_touched_and_details_on_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fault_step(body: dict[str, object]) -> dict[str, list[str]]:
        steps = body["steps"]
        assert isinstance(steps, list)
        return next(i for i in steps[1]["inner"] if i["function"].endswith("handle_mm_fault"))

    small = fault_step(client.post("/api/run", json={"source": FAULT.format(n=600)}).json())
    folios = [r for r in small["created"] if r.startswith("folio:")]
    assert len(folios) == 1 and folios[0].endswith(" (600)")
    detail = client.post("/api/run", json={"source": FAULT.format(n=600), "detail": True})
    listed = [r for r in fault_step(detail.json())["created"] if r.startswith("folio:")]
    assert len(listed) == 600 and folios[0].startswith(listed[0] + "-")
    # The summary's size does not grow with the pages; the detail's does, within its limit.
    sizes = [
        len(client.post("/api/run", json={"source": FAULT.format(n=n)}).content)
        for n in (300, 3000)
    ]
    assert abs(sizes[1] - sizes[0]) < 64
    run = run_source(FAULT.format(n=501), WEB_LIMITS)
    monkeypatch.setattr("app.runs.MAX_API_DETAIL_REFS", 500)
    with pytest.raises(LimitExceeded) as caught:
        api_json(run, True)
    assert caught.value.name == "MAX_API_DETAIL_REFS"


def test_api_run_names_line_and_column_of_a_broken_scenario(client: TestClient) -> None:
    response = client.post("/api/run", json={"source": BROKEN})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["line"] == 2 and detail["col"] >= 1 and detail["msg"]


def test_openapi_documents_the_api(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert "/api/run" in client.get("/openapi.json").json()["paths"]


# --- the app's plumbing ------------------------------------------------------------------


def test_data_directory_is_created(client: TestClient, data_dir: Path) -> None:
    assert data_dir.is_dir()


def test_stepping_does_not_rerun_the_scenario(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = client.app.state.runs  # type: ignore[attr-defined]
    calls = []
    real = runs.runner
    monkeypatch.setattr(runs, "runner", lambda s, p: calls.append(s) or real(s, p))
    for step in range(5):
        client.get(f"/scenarios/dontunmap?step={step}", headers={"HX-Request": "true"})
    assert len(calls) == 1


def test_vendored_htmx_and_licence_are_served(client: TestClient) -> None:
    js = sorted(Path("app/static/vendor").glob("htmx-2.0.*.min.js"))
    assert len(js) == 1
    assert (
        js[0]
        .with_name(js[0].name.replace(".min.js", ".LICENSE"))
        .read_text()
        .startswith("Zero-Clause BSD")
    )
    assert client.get(f"/static/vendor/{js[0].name}").status_code == 200


def test_first_page_is_small(client: TestClient) -> None:
    """first page <= 150 KB including htmx and CSS, as sent (gzip)."""
    total = 0
    for url in [
        "/scenarios/merge_on_mprotect",
        "/static/app.css",
        "/static/app.js",
        f"/static/vendor/{next(Path('app/static/vendor').glob('htmx-*.min.js')).name}",
    ]:
        response = client.get(url, headers={"Accept-Encoding": "gzip"})
        total += int(response.headers.get("content-length", len(response.content)))
    assert total <= 150_000


def test_a_merge_verdict_highlights_the_compared_cells(client: TestClient) -> None:
    # 0123456789012345678901234
    #  AAAAA              BBBBB   A unfaulted, B faulted at 20, moved next to A:
    #  AAAAABBBBB                 case 1 allows it, vm_pgoff refuses it
    from engine.sim.simulation import run_source

    source = (
        "char *c = mmap(NULL, 30 * page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);\n"
        "char *a = mmap(&c[page_size], 5 * page_size, PROT_READ | PROT_WRITE,"
        " MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
        "char *b = mmap(&c[20 * page_size], 5 * page_size, PROT_READ | PROT_WRITE,"
        " MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n"
        "memset(b, 'y', 5 * page_size);\n"
        "b = mremap(b, 5 * page_size, 5 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, &a[5 * page_size]);\n"
    )
    run = run_source(source)
    step = next(i for i, s in enumerate(run.steps) if s.function == "mm/vma.c:copy_vma")
    a_id = run.steps[step].state.mm_vmas("main")[1].id
    doc = html(client.get("/play?" + urlencode({"source": source, "step": step})))
    row = doc.css_first(f'table.vmas tr[data-vma="{a_id}"]')
    assert row is not None
    mark = row.css_first("mark.compared")
    assert mark is not None
    assert "expected 0x7ffff7fdf, found 0x7ffff7fed" in (mark.attributes.get("title") or "")
    # nothing is highlighted at a step that compared nothing
    quiet = html(client.get("/play?" + urlencode({"source": source, "step": 1})))
    assert quiet.css_first("mark.compared") is None


def test_compare_pictures_draw_what_differs_at_one_scale(client: TestClient) -> None:
    policies = [f"policy-{p}" for p in list(POLICIES)[:5]]
    base = "/compare/relocate_gup_race_policies?" + urlencode([("v", p) for p in policies])
    # before the move every run is the same: each picture draws everything, marks nothing
    same = html(client.get(base + "&stmt=0"))
    assert not same.css("g.samecol") and not same.css("rect.differs")
    after = html(client.get(base + "&stmt=6"))
    pictures = [s.css_first("svg.picture") for s in after.css("section.side")]
    assert len(pictures) == 5
    assert len({p.attributes["viewBox"] for p in pictures if p}) > 1  # heights differ
    assert len({p.attributes["width"] for p in pictures if p}) == 1  # widths do not
    # what is the same in all five is one narrow column; what differs is marked,
    # never in the first column, which the others are compared with
    assert all(p.css("g.samecol") for p in pictures if p)
    first, *others = pictures
    assert first is not None and not first.css("rect.differs")
    assert not first.css("g.pvma.differs")
    assert all(p.css("rect.differs") for p in others if p)
    split = others[-1]
    assert split is not None and "≠" in text(split.css_first("g.pvma.differs text.strong"))
    # the picture's rmap sentences are listed beside it, not drawn into it
    notes = after.css("section.side")[0].css("ol.picture-notes li")
    assert notes and "linear_page_index" in text(notes[0])
    assert not first.css("g.note")


# --- the central picture -------------------------------------------------------------


def picture_of(client: TestClient, path: str) -> Node:
    doc = HTMLParser(client.get(path).text)
    svg = doc.css_first("#state svg.picture")
    assert svg is not None
    return svg


def test_picture_draws_each_vma_page_and_anon_vma_of_the_moved_range(client: TestClient) -> None:
    slug = "faulted_move_no_merge"
    svg = picture_of(client, f"/scenarios/{slug}?step={last_step(client, slug)}")
    assert svg.css_first("title") is not None and svg.css_first("desc") is not None
    vmas = {n.attributes["data-vma"]: n.text() for n in svg.css("g.pvma")}
    moved = [t for t in vmas.values() if "pgoff 0x7ffff7fed" in t]
    assert len(moved) == 1 and "anon_vma #" in moved[0]
    assert len(svg.css("g.pfolio .fid")) == 10  # 5 + 5 written pages, one column each
    assert not svg.css("path.link.broken")
    named = {
        t.split("anon_vma #")[1].split()[0].rstrip(",") for t in vmas.values() if "anon_vma #" in t
    }
    assert {n.attributes["data-anon-vma"] for n in svg.css("g.tnode")} == named == {"8", "14"}


def test_picture_breaks_the_rmap_link_with_the_checks_sentence(client: TestClient) -> None:
    slug = "relocate_gup_race_policies"
    locked = picture_of(client, f"/scenarios/{slug}?step=31")
    notes = [n.text() for n in locked.css("g.note")]
    assert notes and all("behind a write lock" in t for t in notes)
    assert len(locked.css("path.link.broken")) == len(notes)
    after = picture_of(client, f"/scenarios/{slug}?step={last_step(client, slug)}")
    notes = [n.text() for n in after.css("g.note")]
    assert notes and not any("behind a write lock" in t for t in notes)
    sentences = [m.value for m in RmapMiss]
    assert all(any(m in t for m in sentences) for t in notes)


def test_picture_download_is_the_page_picture(client: TestClient) -> None:
    r = client.get("/scenarios/fork_and_cow/picture.svg?step=12")
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.text.count('<g class="plane') == 2  # main and child


# --- errors a browser reaches, and /docs ---------------------------------------------


BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/page", 404),
        ("GET", "/scenarios/no_such_scenario", 404),
        ("DELETE", "/", 405),
        ("GET", "/scenarios/fork_and_cow?step=many", 422),
    ],
)
def test_a_browser_gets_an_error_page_with_a_way_back(
    client: TestClient, method: str, path: str, status: int
) -> None:
    r = client.request(method, path, headers=BROWSER)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html")
    doc = HTMLParser(r.text)
    assert f"Error {status}" in doc.css_first(".errorpage .status").text()
    assert doc.css_first('.way-back a[href="/"]') is not None
    if status == 422:
        assert "step" in doc.css_first("#error").text()
    api = client.request(method, path, headers={"Accept": "application/json"})
    assert api.status_code == status and "detail" in api.json()


def test_api_paths_keep_json_errors(client: TestClient) -> None:
    r = client.get("/api/no/such/thing", headers=BROWSER)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_docs_is_swagger_ui_from_the_package(client: TestClient) -> None:
    doc = HTMLParser(client.get("/docs").text)
    scripts = [s.attributes["src"] or "" for s in doc.css("script")]
    assert not doc.css("script:not([src])")  # no inline script: the CSP holds
    bundle = next(s for s in scripts if s.endswith("swagger-ui-bundle.js"))
    assert bundle.startswith("/static/") and client.get(bundle).status_code == 200
    assert doc.css_first("#swagger-ui").attributes["data-openapi"] == "/openapi.json"


# --- plain text for mail -------------------------------------------------------------


@pytest.mark.parametrize("slug", [e.slug for e in gallery()])
def test_every_text_twin_fits_75_columns_titles_included(client: TestClient, slug: str) -> None:
    assert len(next(e for e in gallery() if e.slug == slug).title) <= 75
    for path in (f"/scenarios/{slug}.txt", f"/scenarios/{slug}.txt?step=999999"):
        long = [
            line
            for line in client.get(path).text.splitlines()
            if len(line) > 75 and not line.startswith("Link: ")
        ]
        assert long == [], path


def test_gallery_text_fits_75_columns(client: TestClient) -> None:
    body = client.get("/index.txt").text
    assert "1. VMAs and merging" in body
    assert all(len(line) <= 75 for line in body.splitlines())
