"""Variants of a scenario: the same program with one option changed.

Ours, not the kernel's. The compare view runs a scenario twice, once per
variant, and steps the two runs together statement by statement. A variant
is a named transformation of the scenario's source text that keeps every
statement (so statement N of one run lines up with statement N of the
other) and changes only what the option names:

- ``original``: the source as written.
- ``flags``: the proposed ``MREMAP_RELOCATE_ANON`` and
  ``MREMAP_MUST_RELOCATE_ANON`` flags removed from every expression that ORs
  them in, so the same moves run as today's kernel runs them.
- ``policy-NAME``: the RELOCATE_ANON walk under one of
  engine.sim.policy.POLICIES (a ``// @policy NAME`` line, replacing any other).
- ``rmap-MODEL``: the run under rmap model ``anon_vma`` (Linux 6.18) or
  ``cow_context`` (the COW-context proposal: engine.cow_context), as a
  ``// @rmap MODEL`` line, replacing any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from engine.cow_context import PROPOSAL
from engine.mm_types import RMAP_MODELS, RmapModel
from engine.sim.policy import POLICIES

_RELOCATE = r"MREMAP_(?:MUST_)?RELOCATE_ANON\b"
_OR_BEFORE = re.compile(r"\s*\|\s*" + _RELOCATE)
_OR_AFTER = re.compile(r"\b" + _RELOCATE + r"\s*\|\s*")
_ALONE = re.compile(r"\b" + _RELOCATE)


def _original(source: str) -> str:
    return source


def _without_relocate_flags(source: str) -> str:
    """Drop `| MREMAP_RELOCATE_ANON` (and the MUST_ form) wherever it is ORed in.

    A flag standing alone becomes 0, so the expression stays well formed.
    Comment text is transformed too, which changes no statement.
    """
    source = _OR_BEFORE.sub("", source)
    source = _OR_AFTER.sub("", source)
    return _ALONE.sub("0", source)


def _with_directive(name: str, value: str) -> Callable[[str], str]:
    """Set a `// @NAME VALUE` comment line (the RELOCATE_ANON policy, the
    rmap model): replaced in place or appended, so no statement moves to
    another line."""
    pattern = re.compile(r"^\s*//\s*@" + name + r"\s+\w+[^\n]*\n?", re.MULTILINE)

    def transform(source: str) -> str:
        line = f"// @{name} {value}\n"
        if pattern.search(source):
            return pattern.sub(line, source, count=1)
        return source.rstrip("\n") + "\n" + line

    return transform


_MODELS: dict[RmapModel, str] = {"anon_vma": "Linux 6.18", "cow_context": PROPOSAL}


class Variant(NamedTuple):
    """A named source transformation and a one-line description of it."""

    name: str
    description: str
    transform: Callable[[str], str]


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("original", "the scenario as written", _original),
        Variant(
            "flags",
            "without MREMAP_RELOCATE_ANON and MREMAP_MUST_RELOCATE_ANON",
            _without_relocate_flags,
        ),
        *(
            Variant(
                f"policy-{name}",
                f"RELOCATE_ANON policy {name}: {policy.description}",
                _with_directive("policy", name),
            )
            for name, policy in POLICIES.items()
        ),
        *(
            Variant(
                f"rmap-{model}",
                f"rmap model {model}: {_MODELS[model]}",
                _with_directive("rmap", model),
            )
            for model in RMAP_MODELS
        ),
    )
}


def apply(name: str, source: str) -> str:
    """The source of `source` under variant `name`; KeyError for an unknown name."""
    return VARIANTS[name].transform(source)
