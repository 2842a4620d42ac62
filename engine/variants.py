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
  engine.sim.policy.POLICIES (a ``// @policy NAME`` directive, replacing the
  source's own).
- ``rmap-MODEL``: the run under rmap model ``anon_vma`` (Linux 6.18) or
  ``cow_context`` (the COW-context proposal: engine.cow_context), as a
  ``// @rmap MODEL`` directive, replacing the source's own.

A directive is what engine.scenario.directives says it is: a variant finds
the source's own as the parser does, and writes one the parser reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from engine.cow_context import PROPOSAL
from engine.mm_types import RMAP_MODELS, RmapModel
from engine.scenario import directives
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


def _with_directive(kind: str, name: str) -> Callable[[str], str]:
    """Set the `// @KIND NAME` directive (the RELOCATE_ANON policy, the rmap
    model): the source's first of that kind rewritten in place, else a line
    appended, so no statement moves to another line."""
    line = directives.line(kind, name)

    def transform(source: str) -> str:
        own = next((d for d in directives.find(source) if d.kind == kind), None)
        if own is None:
            return source.rstrip("\n") + "\n" + line + "\n"
        return source[: own.start] + line + source[own.end :]

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
