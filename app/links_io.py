"""Short links as JSON lines, to move a store (SQLite <-> PostgreSQL, or to a new host).

One line per stored scenario: {"id", "source", "options", "engine",
"fingerprint", "created"}. The id is the link; the engine version and the
fingerprint are what the engine that made the link told, so a moved link
still says where today's engine tells a different story. An import checks
each line as a share is checked (app.share.SharedScenario) and that its id
is a prefix of its scenario's digest, so no line can make a link point at
another scenario; an id already stored with the same scenario is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

from pydantic import ValidationError

from app.share import ID_PATTERN, SharedScenario, canonical, scenario_digest
from app.store import ShareRecord, Store


class LinkFileError(ValueError):
    """A line of a links file that cannot be imported, and its line number."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def export_links(store: Store, out: TextIO) -> int:
    """Write every stored link to `out`; the number written."""
    count = 0
    for ident, record in store.records():
        scenario = SharedScenario.model_validate_json(record.scenario)
        line = {
            "id": ident,
            "source": scenario.source,
            "options": scenario.options.model_dump(exclude_none=True),
            "engine": record.engine,
            "fingerprint": record.fingerprint,
            "created": record.created,
        }
        out.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        count += 1
    return count


def _record(number: int, text: str) -> tuple[str, ShareRecord]:
    try:
        line = json.loads(text)
        ident = line["id"]
        scenario = SharedScenario.model_validate(
            {"source": line["source"], "options": line.get("options", {})}
        )
        engine = str(line["engine"])
        fingerprint = [str(f) for f in line.get("fingerprint", [])]
        created = str(line.get("created", ""))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        detail = err.errors()[0]["msg"] if isinstance(err, ValidationError) else repr(err)
        raise LinkFileError(number, f"not a link line: {detail}") from None
    text_form = canonical(scenario)
    if not (
        isinstance(ident, str)
        and ID_PATTERN.fullmatch(ident)
        and scenario_digest(text_form).startswith(ident)
    ):
        raise LinkFileError(number, f"id {ident!r} is not a prefix of its scenario's digest")
    return ident, ShareRecord(text_form, engine, fingerprint, created)


def import_links(store: Store, lines: Iterable[str]) -> tuple[int, int]:
    """Store every link in `lines`: (how many were added, how many were there already).

    A line whose id the store holds for another scenario is a LinkFileError;
    lines before it stay imported (each is its own write-once row).
    """
    added = present = 0
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        ident, record = _record(number, text)
        if store.put(ident, record):
            added += 1
            continue
        existing = store.get(ident)
        if existing is None or existing.scenario != record.scenario:
            raise LinkFileError(number, f"id {ident!r} is stored for another scenario")
        present += 1
    return added, present
