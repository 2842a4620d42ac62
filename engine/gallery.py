"""The packaged scenarios: each engine/scenarios/*.c with its title and note.

Ours. A scenario file starts with `// Title: ...` and `// Note: ...` lines
(a note may continue on further `// ` lines); the web gallery and the CLI
list them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class GalleryEntry:
    """One packaged scenario."""

    slug: str
    title: str
    note: str
    source: str


def parse_header(slug: str, source: str) -> GalleryEntry:
    """Read the leading comment block's Title and Note."""
    title, note = slug, []
    in_note = False
    for line in source.splitlines():
        if not line.startswith("//"):
            break
        text = line[2:].strip()
        if text.startswith("Title:"):
            title, in_note = text[6:].strip(), False
        elif text.startswith("Note:"):
            note.append(text[5:].strip())
            in_note = True
        elif in_note and text and not text.startswith("@"):
            note.append(text)
    return GalleryEntry(slug, title, " ".join(note), source)


@cache
def gallery() -> tuple[GalleryEntry, ...]:
    """Every packaged scenario, ordered by slug."""
    folder = resources.files("engine") / "scenarios"
    entries = [
        parse_header(item.name[:-2], item.read_text(encoding="utf-8"))
        for item in folder.iterdir()
        if item.name.endswith(".c")
    ]
    return tuple(sorted(entries, key=lambda e: e.slug))


def find(slug: str) -> GalleryEntry | None:
    """The packaged scenario named `slug`, if there is one."""
    return next((e for e in gallery() if e.slug == slug), None)
