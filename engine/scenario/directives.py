"""Directives: the `// @policy NAME` and `// @rmap NAME` comments that choose
how a scenario (or a harness file) runs.

Ours. A directive is a `//` comment whose text is `@policy` or `@rmap`
(blanks may come before the `@`), a blank, and one name: a RELOCATE_ANON
policy of engine.sim.policy.POLICIES, or an rmap model of
engine.mm_types.RMAP_MODELS. A file takes at most one of each. Any other
comment (`// @todo`, `// Title:`, `/* @policy split */`) is just a comment.

Both parsers read directives from the comments their lexers meet
(directive(), then settings()); engine.variants finds the same ones with
find() to rewrite them, so the syntax is defined here alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from engine.mm_types import RMAP_MODELS, RmapModel
from engine.scenario.lex import TOKEN, Lines, newlines
from engine.sim.policy import POLICIES

NAMES: dict[str, tuple[str, ...]] = {"policy": tuple(POLICIES), "rmap": RMAP_MODELS}
"""What each directive chooses among."""

_WHAT = {"policy": "RELOCATE_ANON policy", "rmap": "rmap model"}
_COMMENT = re.compile(r"//[ \t\f\v]*@(?P<kind>\w+)(?P<after>[^\n]*)")
_WORD = re.compile(r"[^ \t\f\v]+")


@dataclass(frozen=True)
class Directive:
    """One directive as written, with its offsets in the text."""

    kind: str
    """"policy" or "rmap"."""
    start: int
    """Where its `//` is."""
    end: int
    """Just past its last character that is not a blank."""
    words: tuple[tuple[int, str], ...]
    """What follows `@kind`, word by word, each with its offset: one name, if well written."""

    @property
    def name(self) -> str | None:
        return self.words[0][1] if self.words else None


class Settings(NamedTuple):
    """What a file's directives choose: None where it has none."""

    policy: str | None = None
    rmap_model: RmapModel | None = None


class Chosen(Protocol):
    """What directives chose: Settings, or a parsed Scenario or HarnessFile."""

    @property
    def policy(self) -> str | None: ...

    @property
    def rmap_model(self) -> RmapModel | None: ...


def chosen(
    own: Chosen, policy: str | None = None, rmap_model: RmapModel | None = None
) -> tuple[str, RmapModel]:
    """The policy and rmap model a run takes: as given, else the file's own
    directives (`own`), else "posted" (the series' code as posted) and
    "anon_vma" (Linux 6.18)."""
    return policy or own.policy or "posted", rmap_model or own.rmap_model or "anon_vma"


def directive(match: re.Match[str]) -> Directive | None:
    """The directive a lexer's (lex.TOKEN's) match is, if it is one."""
    if match.lastgroup != "comment":
        return None
    found = _COMMENT.fullmatch(match.group())
    if found is None or found["kind"] not in NAMES:
        return None
    after = match.start() + found.start("after")
    words = tuple((after + w.start(), w.group()) for w in _WORD.finditer(found["after"]))
    return Directive(
        found["kind"], match.start(), match.start() + len(found.group().rstrip()), words
    )


def line(kind: str, name: str) -> str:
    """A directive as one writes it: `// @policy split`."""
    return f"// @{kind} {name}"


def find(text: str) -> list[Directive]:
    """Every directive of `text`, in order, none checked (engine.variants
    rewrites them); the offsets are `text`'s, whatever its newlines."""
    return [d for match in TOKEN.finditer(newlines(text)) if (d := directive(match))]


def settings(lines: Lines, found: Iterable[Directive]) -> Settings:
    """What `found` (the directives of `lines`, in order) choose. A name the
    directive does not know, none, more than one, or a second directive of
    a kind is a ScenarioError at its line and column."""
    chosen: dict[str, Directive] = {}
    for d in found:
        names = NAMES[d.kind]
        choices = f"one of {', '.join(names)}"
        if d.kind in chosen:
            first, _ = lines.position(chosen[d.kind].start)
            raise lines.error(
                d.start, f"a second // @{d.kind} line (the first is line {first}): a file takes one"
            )
        if d.name is None:
            raise lines.error(d.end, f"// @{d.kind} needs a name: {choices}")
        if d.name not in names:
            raise lines.error(
                d.words[0][0], f"unknown {_WHAT[d.kind]} '{d.name}': // @{d.kind} takes {choices}"
            )
        if len(d.words) > 1:
            at, extra = d.words[1]
            raise lines.error(
                at, f"unexpected '{extra[:24]}' after the name: // @{d.kind} takes one name"
            )
        chosen[d.kind] = d
    policy, rmap = chosen.get("policy"), chosen.get("rmap")
    return Settings(
        policy.name if policy else None,
        next((m for m in RMAP_MODELS if rmap and m == rmap.name), None),
    )


def read(text: str) -> Settings:
    """What the directives of `text` choose, checked as the parsers check them
    (without parsing the rest): for a source not parsed yet."""
    return settings(Lines(newlines(text)), find(text))
