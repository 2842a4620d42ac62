"""Shared scenarios: the canonical form, self-contained tokens, short ids.

A scenario to share is its source and its run options. Its canonical form
is `{"options": {...}, "source": ...}` as JSON with sorted keys and no
spaces; from it come

- a self-contained token, `v1.` + base64url(zlib(canonical)), that a
  `/play?s=` link carries and any server can read without a database, and
- a short id, the first MIN_ID_LENGTH hex digits of its SHA-256, one more
  digit at a time while another scenario holds the prefix; `/s/<id>` reads
  it from the store.

Tokens come from strangers: decode_token checks the length, the version,
the alphabet, the inflated size, the checksum and the fields, and a
BadToken says which check failed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import threading
import zlib
from collections import OrderedDict
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.limits import (
    MAX_DECOMPRESSED_BYTES,
    MAX_SHARED_SOURCE_BYTES,
    MAX_TOKEN_CHARS,
    MIN_ID_LENGTH,
)
from app.models import with_rmap_model
from app.runs import RunCache
from app.store import ShareRecord, Store
from engine.mm_types import RmapModel
from engine.scenario import directives
from engine.scenario.errors import ScenarioError
from engine.sim.policy import POLICIES
from engine.version import ENGINE_VERSION, fingerprint

TOKEN_VERSION = "v1"
ID_PATTERN = re.compile(r"[0-9a-f]{8,64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class RunOptions(BaseModel):
    """How to run the scenario. Unset options take the source's own choice."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = Field(
        default=None,
        description="RELOCATE_ANON policy: " + ", ".join(POLICIES),
        examples=["posted"],
    )

    rmap_model: RmapModel | None = Field(
        default=None,
        description="rmap model: anon_vma (Linux 6.18) or cow_context (the COW-context"
        " proposal, a4ac1966: no kernel runs it); default: the source's // @rmap line",
        examples=["cow_context"],
    )

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str | None) -> str | None:
        if value is not None and value not in POLICIES:
            raise ValueError(f"unknown policy {value!r}; known: {', '.join(POLICIES)}")
        return value


class SharedScenario(BaseModel):
    """A scenario to share: its text and its run options."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(examples=["char *p = mmap(NULL, 4096, 3, 0x22, -1, 0);"])
    options: RunOptions = Field(default_factory=RunOptions)

    @field_validator("source")
    @classmethod
    def _source_size(cls, value: str) -> str:
        try:
            size = len(value.encode())
        except UnicodeEncodeError:
            raise ValueError("source is not valid Unicode (a lone surrogate)") from None
        if size > MAX_SHARED_SOURCE_BYTES:
            raise ValueError(
                f"source is {size} bytes; MAX_SHARED_SOURCE_BYTES is {MAX_SHARED_SOURCE_BYTES}"
            )
        return value

    def normalized(self) -> SharedScenario:
        """The same scenario with options that change nothing left out, so one
        scenario has one canonical form (a policy equal to the source's own,
        its directive's or the default). A source whose directives are wrong
        (engine.scenario.directives.read raises) keeps its options as given."""
        policy, model = self.options.policy, self.options.rmap_model
        if policy is not None or model is not None:
            own_policy: str | None = None
            own_model: RmapModel | None = None
            with contextlib.suppress(ScenarioError):  # wrong directives: options kept
                own_policy, own_model = directives.chosen(directives.read(self.source))
            if policy == own_policy:
                policy = None
            if model == own_model:
                model = None
        return SharedScenario(
            source=self.source, options=RunOptions(policy=policy, rmap_model=model)
        )

    @property
    def policy(self) -> str | None:
        return self.options.policy

    @property
    def run_source(self) -> str:
        """The source as run: under the `rmap_model` option, if set."""
        return with_rmap_model(self.source, self.options.rmap_model)


class ShareResponse(BaseModel):
    """A short link: its id and its path."""

    id: str = Field(examples=["3f9a0c12"])
    url: str = Field(examples=["/s/3f9a0c12"])
    token: str = Field(description="the self-contained token of /play?s=")


class BadLink(Exception):
    """A link that cannot be followed: the message says why, `status` answers it
    (app/errors.py shows it as the page, JSON or text the request asked for)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class BadToken(BadLink, ValueError):
    """A self-contained link that cannot be read; the message says why."""


def scenario_from_form(form: dict[str, str]) -> SharedScenario:
    """The scenario of a form's `source`, `policy` and `rmap` fields; BadLink (422)
    naming the field that is wrong (a source over MAX_SHARED_SOURCE_BYTES)."""
    options = {"policy": form["policy"]} if form.get("policy") else {}
    if form.get("rmap"):
        options["rmap_model"] = form["rmap"]
    try:
        return SharedScenario.model_validate({"source": form.get("source", ""), "options": options})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadLink(f"{where}: {first['msg']}", 422) from None


def canonical(scenario: SharedScenario) -> str:
    """The canonical JSON of a scenario: sorted keys, compact, UTF-8 as is."""
    scenario = scenario.normalized()
    document = {
        "options": scenario.options.model_dump(exclude_none=True),
        "source": scenario.source,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encode_token(scenario: SharedScenario) -> str:
    packed = zlib.compress(canonical(scenario).encode(), 9)
    return f"{TOKEN_VERSION}." + base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode_token(token: str) -> SharedScenario:
    """The scenario a token carries; BadToken naming the first check it fails."""
    if len(token) > MAX_TOKEN_CHARS:
        raise BadToken(f"the link is {len(token)} characters; MAX_TOKEN_CHARS is {MAX_TOKEN_CHARS}")
    version, dot, body = token.partition(".")
    if not dot:
        raise BadToken(f"the link has no version prefix (it should start {TOKEN_VERSION}.)")
    if version != TOKEN_VERSION:
        raise BadToken(
            f"the link is version {version[:16]!r}; this server reads {TOKEN_VERSION} only"
        )
    if not _BASE64URL.fullmatch(body):
        raise BadToken("the link has characters outside base64url (cut or re-encoded in transit?)")
    try:
        packed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("the link is not valid base64url (cut short?)") from None
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed, MAX_DECOMPRESSED_BYTES)
    except zlib.error as err:
        raise BadToken(f"the link's data is damaged ({err})") from None
    if inflater.unconsumed_tail:
        raise BadToken(f"the link inflates past MAX_DECOMPRESSED_BYTES ({MAX_DECOMPRESSED_BYTES})")
    if not inflater.eof:
        raise BadToken("the link's data is cut short")
    if inflater.unused_data:
        raise BadToken("the link has data after its end")
    try:
        document = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadToken("the link's data is not JSON") from None
    if not isinstance(document, dict):
        raise BadToken("the link's data is not a JSON object")
    try:
        return SharedScenario.model_validate(document)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "scenario"
        raise BadToken(f"the link's {where}: {first['msg']}") from None


def scenario_digest(text: str) -> str:
    """The SHA-256 of a canonical form, in hex: short ids are its prefixes."""
    return hashlib.sha256(text.encode()).hexdigest()


# --- the story a run tells ---------------------------------------------------

_stories: OrderedDict[str, list[str]] = OrderedDict()
_stories_lock = threading.Lock()
STORY_CACHE = 64


def story(runs: RunCache, scenario: SharedScenario) -> list[str]:
    """Today's engine's fingerprint of a scenario (one hash per statement);
    a scenario that does not parse has the fingerprint of its error."""
    key = canonical(scenario)
    with _stories_lock:
        if key in _stories:
            _stories.move_to_end(key)
            return _stories[key]
    try:
        result = fingerprint(runs.get(scenario.run_source, scenario.policy))
    except ScenarioError as err:
        result = [hashlib.sha256(f"parse error: {err}".encode()).hexdigest()[:16]]
    with _stories_lock:
        _stories[key] = result
        while len(_stories) > STORY_CACHE:
            _stories.popitem(last=False)
    return result


def share(store: Store, runs: RunCache, scenario: SharedScenario) -> str:
    """The short id of `scenario`, storing it first if it is new.

    The same scenario always gets the same id: the first free-or-ours prefix
    of its digest. put() is insert-if-absent, so two servers sharing the same
    scenario at once agree, and two sharing different scenarios with one
    prefix end with different ids.
    """
    text = canonical(scenario)
    digest = scenario_digest(text)
    record: ShareRecord | None = None
    for length in range(MIN_ID_LENGTH, len(digest) + 1):
        ident = digest[:length]
        existing = store.get(ident)
        if existing is None:
            if record is None:
                record = ShareRecord(
                    scenario=text,
                    engine=ENGINE_VERSION,
                    fingerprint=story(runs, scenario),
                    created=datetime.now(UTC).isoformat(timespec="seconds"),
                )
            if store.put(ident, record):
                return ident
            existing = store.get(ident)
        if existing is not None and existing.scenario == text:
            return ident
    raise RuntimeError(f"every prefix of {digest} is taken")  # a SHA-256 collision


def load(store: Store, ident: str) -> tuple[SharedScenario, ShareRecord] | None:
    """The scenario stored under `ident`, or None."""
    if not ID_PATTERN.fullmatch(ident):
        return None
    record = store.get(ident)
    if record is None:
        return None
    return SharedScenario.model_validate_json(record.scenario), record
