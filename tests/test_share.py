"""Sharing: self-contained links, short links, their stores, twins, SVGs and embeds."""

from __future__ import annotations

import base64
import threading
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser as HTMLParser

import app.share
from app.limits import (
    MAX_DECOMPRESSED_BYTES,
    MAX_SHARED_SOURCE_BYTES,
    MAX_TOKEN_CHARS,
    MIN_ID_LENGTH,
)
from app.main import create_app
from app.runs import RunCache
from app.share import (
    BadToken,
    RunOptions,
    SharedScenario,
    canonical,
    decode_token,
    encode_token,
    share,
)
from app.store import PostgresStore, ShareRecord, SQLiteStore, Store, open_store
from engine.gallery import find
from engine.present.text import WIDTH
from engine.version import ENGINE_VERSION

SOURCE = """\
char *p = mmap(NULL, 4 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
memset(p, 'x', 4 * page_size);
char *q = mremap(p, 2 * page_size, 2 * page_size, MREMAP_MAYMOVE | MREMAP_FIXED, p + 8 * page_size);
munmap(q, page_size);
"""


def variant(n: int) -> str:
    return SOURCE + f"// variant {n}\n"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("MREMAP_VIZ_DATA", str(path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return path


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    application = create_app(isolate=False)
    with TestClient(application) as c:
        yield c
    application.state.store.close()


def html(response: object) -> HTMLParser:
    return HTMLParser(response.text)  # type: ignore[attr-defined]


def text_of(doc: HTMLParser, selector: str) -> str:
    node = doc.css_first(selector)
    assert node is not None, selector
    return " ".join(node.text(deep=True).split())


def shared(client: TestClient, source: str = SOURCE, **options: str) -> str:
    r = client.post("/api/share", json={"source": source, "options": options})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


# --- the canonical form and self-contained tokens -------------------------------------


def test_canonical_json_is_sorted_and_compact() -> None:
    scenario = SharedScenario(source="munmap(0, 1);\n", options=RunOptions(policy="split"))
    assert canonical(scenario) == '{"options":{"policy":"split"},"source":"munmap(0, 1);\\n"}'
    assert canonical(SharedScenario(source="é")) == '{"options":{},"source":"é"}'


def test_a_policy_the_source_already_asks_for_is_left_out() -> None:
    source = "// @policy split\n" + SOURCE
    plain = SharedScenario(source=source)
    explicit = SharedScenario(source=source, options=RunOptions(policy="split"))
    assert canonical(plain) == canonical(explicit)
    assert canonical(
        SharedScenario(source=SOURCE, options=RunOptions(policy="posted"))
    ) == canonical(SharedScenario(source=SOURCE))


def test_a_policy_is_left_out_only_against_the_source_s_own_directive() -> None:
    def options(source: str, policy: str) -> str:
        return canonical(SharedScenario(source=source, options=RunOptions(policy=policy)))

    assert '"policy":"split"' in options("/* // @policy split */\n" + SOURCE, "split")
    assert '"policy":"split"' not in options("  //  @policy split\r\n" + SOURCE, "split")
    # a directive that is wrong: nothing to compare with, the option stays as given
    assert '"policy":"posted"' in options("// @policy spilt\n" + SOURCE, "posted")


@settings(max_examples=60, deadline=None)
@given(
    source=st.text(st.characters(exclude_categories=("Cs",)), max_size=400),
    policy=st.sampled_from([None, "posted", "pinned_aborts", "no_pin_check", "isolate", "split"]),
)
def test_token_round_trip(source: str, policy: str | None) -> None:
    scenario = SharedScenario(source=source, options=RunOptions(policy=policy))
    token = encode_token(scenario)
    assert token.startswith("v1.")
    assert all(c.isalnum() or c in "-_." for c in token), "a token needs no URL escaping"
    decoded = decode_token(token)
    assert decoded.source == source
    assert canonical(decoded) == canonical(scenario)


def _token(payload: bytes) -> str:
    return "v1." + base64.urlsafe_b64encode(zlib.compress(payload)).decode().rstrip("=")


def _flip(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


BAD_TOKENS = {
    "no version": ("eNqrVsovKMnMzytWsqpWKsjPyUyuVLJSKi7IySxRqtVRKs4v", "no version prefix"),
    "other version": ("v9.eNqrVsovKMnMzytW", "version 'v9'"),
    "not base64url": ("v1.abc$def", "outside base64url"),
    "bad padding": ("v1.a", "not valid base64url"),
    "tampered": (_flip(encode_token(SharedScenario(source=SOURCE))), "damaged"),
    "cut short": (encode_token(SharedScenario(source=SOURCE))[:-12], ""),
    "too long": ("v1." + "A" * MAX_TOKEN_CHARS, "MAX_TOKEN_CHARS"),
    "bomb": (_token(b" " * (MAX_DECOMPRESSED_BYTES + 10)), "MAX_DECOMPRESSED_BYTES"),
    "not json": (_token(b"hello"), "not JSON"),
    "not an object": (_token(b"[1, 2]"), "not a JSON object"),
    "unknown field": (_token(b'{"source": "", "colour": 1}'), "colour"),
    "unknown option": (_token(b'{"source": "", "options": {"speed": 2}}'), "options.speed"),
    "unknown policy": (_token(b'{"source": "", "options": {"policy": "yolo"}}'), "options.policy"),
    "source too big": (
        _token(('{"source": "' + "x" * (MAX_SHARED_SOURCE_BYTES + 1) + '"}').encode()),
        "MAX_SHARED_SOURCE_BYTES",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_broken_tokens_say_what_is_wrong(case: str) -> None:
    token, says = BAD_TOKENS[case]
    with pytest.raises(BadToken, match=None) as info:
        decode_token(token)
    assert says in str(info.value)


@pytest.mark.parametrize("case", ["tampered", "other version", "bomb", "unknown policy"])
def test_a_broken_link_is_a_4xx_page_saying_why(client: TestClient, case: str) -> None:
    token, says = BAD_TOKENS[case]
    r = client.get("/play", params={"s": token, "step": 3})
    assert r.status_code == 400
    doc = html(r)
    assert "does not work" in text_of(doc, "h1")
    assert says in text_of(doc, "#link-error")
    j = client.get("/play.json", params={"s": token})
    assert j.status_code == 400 and says in j.json()["detail"]
    t = client.get("/play.txt", params={"s": token})
    assert t.status_code == 400 and says in t.text


def test_self_contained_link_opens_the_same_scenario_at_its_step(client: TestClient) -> None:
    token = encode_token(SharedScenario(source=SOURCE, options=RunOptions(policy="split")))
    doc = html(client.get(f"/play?s={token}&step=4"))
    assert text_of(doc, "#source-editor") == " ".join(SOURCE.split())
    assert "selected" in doc.css_first('#policy option[value="split"]').attributes
    assert doc.css_first("#state").attributes["data-step"] == "4"
    # the step controls keep the token, not the source
    nxt = doc.css_first('#stepnav a[data-nav="next"]').attributes["href"] or ""
    assert parse_qs(urlsplit(nxt).query) == {"s": [token], "step": ["5"]}
    j = client.get(f"/play.json?s={token}").json()
    assert j["source"] == SOURCE


# --- short links --------------------------------------------------------------------


def test_share_round_trip_and_idempotence(client: TestClient) -> None:
    r = client.post("/api/share", json={"source": SOURCE, "options": {"policy": "isolate"}})
    body = r.json()
    ident = body["id"]
    assert len(ident) == MIN_ID_LENGTH and all(c in "0123456789abcdef" for c in ident)
    assert body["url"] == f"/s/{ident}"
    assert decode_token(body["token"]).source == SOURCE
    again = client.post("/api/share", json={"options": {"policy": "isolate"}, "source": SOURCE})
    assert again.json()["id"] == ident
    assert shared(client, SOURCE) != ident, "another policy is another scenario"
    j = client.get(f"/s/{ident}.json?step=3").json()
    assert j["source"] == SOURCE and j["options"] == {"policy": "isolate"}
    assert j["engine"] == ENGINE_VERSION and j["drift"]["statement"] is None
    assert j["page"]["index"] == 3


@pytest.mark.parametrize(
    ("source", "options"),
    [("// @policy split\n" + SOURCE, {}), (SOURCE, {"policy": "split"}), (SOURCE, {})],
    ids=["directive", "option", "neither"],
)
def test_the_shared_page_names_the_policy_the_run_took(
    client: TestClient, source: str, options: dict[str, str]
) -> None:
    ident = client.post("/api/share", json={"source": source, "options": options}).json()["id"]
    lede = HTMLParser(client.get(f"/s/{ident}").text).css_first("p.lede").text()
    assert ("RELOCATE_ANON policy split." in lede) == bool(options or "@policy" in source)


def test_share_rejects_unknown_options_naming_the_field(client: TestClient) -> None:
    r = client.post("/api/share", json={"source": SOURCE, "options": {"speed": 1}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-2:] == ["options", "speed"]
    r = client.post("/api/share", json={"source": SOURCE, "options": {"policy": "fast"}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-2:] == ["options", "policy"]
    assert "unknown policy 'fast'" in r.json()["detail"][0]["msg"]
    r = client.post("/api/share", json={"source": "x" * (MAX_SHARED_SOURCE_BYTES + 1)})
    assert r.status_code in (413, 422)


def test_a_link_in_wrapped_mail_fits_75_columns(client: TestClient) -> None:
    ident = shared(client)
    assert len(f"Link: https://example.org/s/{ident}?step=12") <= 75
    first = client.get(f"/s/{ident}.txt?step=12").text.splitlines()[0]
    assert first == f"Link: http://testserver/s/{ident}?step=12"


def test_unknown_and_malformed_ids_are_404_pages(client: TestClient) -> None:
    for ident in ("0123abcd", "NOT-AN-ID", "abc"):
        r = client.get(f"/s/{ident}")
        assert r.status_code == 404
        assert "no shared scenario" in text_of(html(r), "#link-error")
        assert client.get(f"/s/{ident}.json").status_code == 404
        assert client.get(f"/s/{ident}.txt").status_code == 404


def test_forced_prefix_collision_grows_the_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = app.share.scenario_digest
    monkeypatch.setattr(app.share, "scenario_digest", lambda text: "a" * 8 + real(text))
    first = shared(client, variant(1))
    second = shared(client, variant(2))
    third = shared(client, variant(3))
    assert first == "a" * 8
    assert second.startswith("a" * 8) and len(second) == 9
    assert third.startswith("a" * 8) and len(third) >= 9 and third != second
    for ident, n in ((first, 1), (second, 2), (third, 3)):
        assert client.get(f"/s/{ident}.json").json()["source"] == variant(n)
    assert shared(client, variant(2)) == second, "the same scenario keeps its longer id"


def test_the_short_link_button_works_without_javascript(client: TestClient) -> None:
    doc = html(client.get("/play", params={"source": SOURCE, "policy": "split", "step": 5}))
    form = doc.css_first("#sharebar form.shorten")
    assert form.attributes["method"] == "post" and form.attributes["action"] == "/share"
    fields = {i.attributes["name"]: i.attributes["value"] for i in form.css("input")}
    assert fields["step"] == "5"
    r = client.post("/share", data=fields, follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/s/") and location.endswith("?step=5")
    j = client.get(location.replace("?", ".json?")).json()
    assert j["source"] == SOURCE and j["options"] == {"policy": "split"}
    assert client.post("/share", data={"s": "v2.zzz"}).status_code == 400


# --- the share bar, twins, SVG, embed -----------------------------------------------


def test_copy_buttons_are_links_to_the_twins(client: TestClient) -> None:
    ident = shared(client)
    doc = html(client.get(f"/s/{ident}?step=6"))
    link = doc.css_first('#sharebar a.copy[data-copy="link"]')
    text = doc.css_first('#sharebar a.copy[data-copy="text"]')
    assert " ".join(link.text().split()) == "Copy link"
    assert " ".join(text.text().split()) == "Copy as text"
    assert link.attributes["href"] == f"/s/{ident}?step=6"
    assert text.attributes["href"] == f"/s/{ident}.txt?step=6"
    assert doc.css_first("#sharebar form.shorten") is None, "already short"
    assert (
        client.get(text.attributes["href"] or "").headers["content-type"].startswith("text/plain")
    )
    # on the playground, "Copy link" is the self-contained link
    doc = html(client.get("/play", params={"source": SOURCE, "step": 2}))
    href = doc.css_first('#sharebar a[data-copy="link"]').attributes["href"] or ""
    query = parse_qs(urlsplit(href).query)
    assert href.startswith("/play?s=v1.") and query["step"] == ["2"]
    assert decode_token(query["s"][0]).source == SOURCE
    text_href = doc.css_first('#sharebar a[data-copy="text"]').attributes["href"] or ""
    assert text_href.startswith("/play.txt?s=v1.")
    assert client.get(text_href).status_code == 200
    # on a gallery page, the page's own link
    doc = html(client.get("/scenarios/dontunmap?step=3"))
    assert doc.css_first('#sharebar a[data-copy="link"]').attributes["href"] == (
        "/scenarios/dontunmap?step=3"
    )


def test_the_share_bar_follows_an_htmx_step(client: TestClient) -> None:
    ident = shared(client)
    r = client.get(f"/s/{ident}?step=4", headers={"HX-Request": "true"})
    doc = html(r)
    bar = doc.css_first("#sharebar")
    assert bar.attributes.get("hx-swap-oob") == "true"
    assert doc.css_first('a[data-copy="link"]').attributes["href"] == f"/s/{ident}?step=4"


def test_text_twin_is_before_and_after_within_75_columns(client: TestClient) -> None:
    ident = shared(client)
    last = client.get(f"/s/{ident}.json").json()["page"]["total"] - 1
    for step in range(0, last + 1, 3):
        body = client.get(f"/s/{ident}.txt?step={step}").text
        lines = body.splitlines()
        assert max(len(line) for line in lines[1:]) <= WIDTH
        assert "-- before --" in lines and "-- after --" in lines
    body = client.get(f"/s/{ident}.txt?step={last}").text
    assert "munmap(q, page_size);" in body
    assert " anon_vma root parent" in body, "anon_vmas are listed"
    assert " rmap " in body, "folio indexes are checked page by page"


@pytest.mark.parametrize(
    "path",
    [
        "/scenarios/fork_and_cow/map.svg?step=9",
        "/scenarios/fork_and_cow/anon_vma.svg?step=9",
        "/s/{id}/map.svg?step=3",
        "/s/{id}/anon_vma.svg?step=3",
        "/s/{id}/picture.svg?step=3",
        "/play/map.svg?" + urlencode({"source": SOURCE, "step": 3}),
    ],
)
def test_svg_downloads_are_standalone_documents(client: TestClient, path: str) -> None:
    ident = shared(client)
    r = client.get(path.replace("{id}", ident))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(r.content)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.attrib["width"] and root.attrib["height"]
    style = root.find("{http://www.w3.org/2000/svg}style")
    assert style is not None and ".av-0" in (style.text or "")
    assert "filename=" in r.headers["content-disposition"]
    assert "<p " not in r.text and "legend" not in r.text


def test_svg_links_on_the_page(client: TestClient) -> None:
    ident = shared(client)
    doc = html(client.get(f"/s/{ident}?step=3"))
    hrefs = [a.attributes["href"] for a in doc.css("#sharebar a[download]")]
    assert hrefs == [
        f"/s/{ident}/picture.svg?step=3",
        f"/s/{ident}/map.svg?step=3",
        f"/s/{ident}/anon_vma.svg?step=3",
    ]


def test_embed_mode_has_no_chrome_and_keeps_embedding(client: TestClient) -> None:
    ident = shared(client)
    doc = html(client.get(f"/s/{ident}?step=2&embed=1"))
    assert doc.css_first("header.site") is None and doc.css_first("footer.site") is None
    assert doc.css_first("#state") is not None
    nxt = doc.css_first('#stepnav a[data-nav="next"]').attributes["href"] or ""
    assert parse_qs(urlsplit(nxt).query) == {"step": ["3"], "embed": ["1"]}
    hidden = {
        i.attributes["name"]: i.attributes["value"] for i in doc.css("#scrubber input[type=hidden]")
    }
    assert hidden == {"embed": "1"}
    link = doc.css_first('a[data-copy="link"]').attributes["href"]
    assert link == f"/s/{ident}?step=2", "the link to share is the whole page"
    assert doc.css_first("a.embed").attributes["href"] == f"/s/{ident}?step=2&embed=1"
    doc = html(client.get(f"/s/{ident}?step=2"))
    assert doc.css_first("header.site") is not None
    doc = html(client.get("/scenarios/dontunmap?embed=1"))
    assert doc.css_first("header.site") is None


# --- links are forever --------------------------------------------------------------


def test_a_story_changed_by_the_engine_is_noticed(client: TestClient) -> None:
    ident = shared(client)
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    record = store.get(ident)
    assert record is not None and record.engine == ENGINE_VERSION
    old = list(record.fingerprint)
    old[2] = "0" * 16
    store.put("feedf00d", ShareRecord(record.scenario, "6.17-old", old, record.created))
    doc = html(client.get("/s/feedf00d"))
    notice = text_of(doc, "#drift.notice")
    assert "made with engine 6.17-old" in notice
    assert f"today's engine ({ENGINE_VERSION}) tells a different story at statement 3" in notice
    run_first = client.get("/s/feedf00d.json").json()["scenario"]["steps"][2]["inner"][0]["index"]
    assert doc.css_first("#drift a").attributes["href"] == f"/s/feedf00d?step={run_first}"
    assert client.get("/s/feedf00d.json").json()["drift"]["statement"] == 2
    assert "different story at statement 3" in " ".join(client.get("/s/feedf00d.txt").text.split())
    # same story, older engine: said quietly
    store.put(
        "feedf00e", ShareRecord(record.scenario, "6.17-old", record.fingerprint, record.created)
    )
    doc = html(client.get("/s/feedf00e"))
    assert "tells the same story" in text_of(doc, "#drift")
    assert doc.css_first("#drift.notice") is None
    # today's own links say nothing
    assert html(client.get(f"/s/{ident}")).css_first("#drift") is None


def test_a_restart_keeps_every_link(data_dir: Path) -> None:
    sources = [variant(n) for n in range(6)] + [find("dontunmap").source]  # type: ignore[union-attr]
    first = create_app(isolate=False)
    with TestClient(first) as c:
        ids = [shared(c, s) for s in sources]
    first.state.store.close()
    second = create_app(isolate=False)
    with TestClient(second) as c:
        for ident, source in zip(ids, sources, strict=True):
            assert c.get(f"/s/{ident}.json").json()["source"] == source
            assert c.get(f"/s/{ident}").status_code == 200
        assert [shared(c, s) for s in sources] == ids
    second.state.store.close()


def test_sqlite_is_wal_and_synchronous_full(data_dir: Path) -> None:
    store = open_store(data_dir)
    assert isinstance(store, SQLiteStore)
    conn = store._connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_database_url_chooses_the_store(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"), SQLiteStore)
    with pytest.raises(ValueError, match="unsupported scheme 'mysql'"):
        open_store(tmp_path, "mysql://localhost/x")


# --- the stores, SQLite and PostgreSQL -----------------------------------------------


def test_store_put_is_insert_if_absent(store_url: str, tmp_path: Path) -> None:
    store = open_store(tmp_path, store_url)
    record = ShareRecord('{"options":{},"source":"é"}', ENGINE_VERSION, ["ab", "cd"], "2025-06-18")
    assert store.get("12345678") is None
    assert store.put("12345678", record) is True
    assert store.put("12345678", ShareRecord("other", "x", [], "")) is False
    assert store.get("12345678") == record
    store.close()
    reopened = open_store(tmp_path, store_url)
    assert reopened.get("12345678") == record
    reopened.close()


def test_concurrent_shares(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many servers (one store object each) share at once: the same scenario gets
    one id; different ones, even with one forced prefix, get different ids."""
    runs = RunCache()
    stores = [open_store(tmp_path, store_url) for _ in range(4)]
    same = SharedScenario(source=SOURCE)
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: share(stores[i % 4], runs, same), range(32)))
    assert len(set(ids)) == 1
    different = [SharedScenario(source=variant(n)) for n in range(24)]
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: share(stores[i % 4], runs, different[i]), range(24)))
    assert len(set(ids)) == 24
    real = app.share.scenario_digest
    monkeypatch.setattr(app.share, "scenario_digest", lambda text: "b" * 8 + real(text))
    colliding = [SharedScenario(source=variant(100 + n)) for n in range(6)] * 3
    barrier = threading.Barrier(6)

    def racing(i: int) -> str:
        if i < 6:
            barrier.wait()
        return share(stores[i % 4], runs, colliding[i])

    with ThreadPoolExecutor(18) as pool:
        ids = list(pool.map(racing, range(18)))
    assert len(set(ids)) == 6 and all(i.startswith("b" * 8) for i in ids)
    assert ids[:6] == ids[6:12] == ids[12:], "each scenario kept one id"
    for ident, scenario in zip(ids, colliding, strict=False):
        stored = stores[0].get(ident)
        assert stored is not None and stored.scenario == canonical(scenario)
    for s in stores:
        s.close()


def test_app_on_postgresql(pg_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two app servers on one database: a link made on one opens on the other."""
    monkeypatch.setenv("DATABASE_URL", pg_url)
    one, two = create_app(isolate=False), create_app(isolate=False)
    assert isinstance(one.state.store, PostgresStore)
    with TestClient(one) as a, TestClient(two) as b:
        ident = shared(a)
        assert shared(b) == ident
        assert b.get(f"/s/{ident}.json").json()["source"] == SOURCE
        assert b.get(f"/s/{ident}.txt?step=3").text.startswith(f"Link: http://testserver/s/{ident}")
    one.state.store.close()
    two.state.store.close()
    assert not (data_dir / "shares.sqlite3").exists()


def test_a_source_too_big_to_share_still_plays() -> None:
    from app.routes.play import PlayInput

    emoji = MAX_SHARED_SOURCE_BYTES // 4 + 1
    source = "// " + "\U0001f600" * emoji + "\n" + SOURCE  # > MAX_SHARED_SOURCE_BYTES in UTF-8
    links = PlayInput(source, None, None, None).links()
    assert links.shorten is None and links.shared is None
    assert links.link(1).startswith("/play?source=")
