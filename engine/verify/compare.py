"""Line up the simulator's steps with the real kernel's and list differences.

Both sides are the JSON contract's steps ({"line", "source", "process",
"result", "value", "maps"}). Shared-anonymous inode numbers are renumbered
on both sides first, since the real kernel hands out fresh ones every run;
fork's value (a pid) is never compared, only mmap's and mremap's addresses.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from engine.verify.real import canonical_inodes

WIDTH = 75
ADDRESS_CALLS = ("mmap", "mremap")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


@dataclass(frozen=True)
class Difference:
    """One way a statement's outcome differs between the two kernels.

    `what` is "result", "value", "maps:NAME" or "steps" (one side ran more
    statements). Each side holds the compared text: one item for a result
    or value, the maps lines for maps, None where that side has no such
    process or step.
    """

    line: int
    source: str
    what: str
    simulated: tuple[str, ...] | None
    real: tuple[str, ...] | None

    def __str__(self) -> str:
        head = f"line {self.line}: {' '.join(self.source.split())}"
        if len(head) > WIDTH:
            head = head[: WIDTH - 3] + "..."
        return "\n".join([head, *self._body()])

    def _body(self) -> list[str]:
        if self.simulated is None or self.real is None:
            only = "the simulation" if self.real is None else "the real kernel"
            thing = "statement" if self.what == "steps" else f"process {self._process}"
            return [f"  {thing}: only in {only}"]
        if self.what.startswith("maps:"):
            body = [f"  maps of {self._process} (- simulated, + real):"]
            matcher = SequenceMatcher(None, self.simulated, self.real, autojunk=False)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                if tag != "equal":
                    body += [f"  - {line}" for line in self.simulated[i1:i2]]
                    body += [f"  + {line}" for line in self.real[j1:j2]]
            return body
        return [f"  {self.what}: simulated {self.simulated[0]}, real {self.real[0]}"]

    @property
    def _process(self) -> str:
        return self.what.partition(":")[2]


def compare(
    sim_steps: Sequence[Mapping[str, Any]], real_steps: Sequence[Mapping[str, Any]]
) -> list[Difference]:
    """Every difference, statement by statement, in order."""
    differences: list[Difference] = []
    for sim, real in zip(sim_steps, real_steps, strict=False):
        differences += _compare_step(sim, real)
    if len(sim_steps) != len(real_steps):
        first = min(len(sim_steps), len(real_steps))
        extra = sim_steps[first] if len(sim_steps) > first else real_steps[first]
        differences.append(
            Difference(
                extra["line"],
                extra["source"],
                "steps",
                ("ran",) if len(sim_steps) > first else None,
                ("ran",) if len(real_steps) > first else None,
            )
        )
    return differences


def _compare_step(sim: Mapping[str, Any], real: Mapping[str, Any]) -> list[Difference]:
    line, source = sim["line"], sim["source"]
    out = []
    if sim["result"] != real["result"]:
        out.append(Difference(line, source, "result", (sim["result"],), (real["result"],)))
    elif (
        sim["result"] == "ok"
        and _call_name(source) in ADDRESS_CALLS
        and sim["value"] != real["value"]
    ):
        out.append(Difference(line, source, "value", (_hex(sim["value"]),), (_hex(real["value"]),)))
    sim_maps, real_maps = _canonical(sim["maps"]), _canonical(real["maps"])
    for name in _ordered(sim_maps.keys() | real_maps.keys()):
        sim_lines, real_lines = sim_maps.get(name), real_maps.get(name)
        if sim_lines != real_lines:
            out.append(
                Difference(
                    line,
                    source,
                    f"maps:{name}",
                    None if sim_lines is None else tuple(sim_lines),
                    None if real_lines is None else tuple(real_lines),
                )
            )
        elif "resident" in sim and "resident" in real:
            sim_pages = sim["resident"].get(name, {})
            real_pages = real["resident"].get(name, {})
            differ = sorted(
                vma
                for vma in sim_pages.keys() | real_pages.keys()
                if sim_pages.get(vma) != real_pages.get(vma)
            )
            if differ:
                out.append(
                    Difference(
                        line,
                        source,
                        f"resident:{name}",
                        tuple(f"{vma} {sim_pages.get(vma)} pages" for vma in differ),
                        tuple(f"{vma} {real_pages.get(vma)} pages" for vma in differ),
                    )
                )
    return out


def _call_name(source: str) -> str | None:
    """The statement's call: the first name followed by "("; casts have none."""
    match = _CALL.search(source)
    return match.group(1) if match else None


def _hex(value: int | None) -> str:
    return "null" if value is None else hex(value)


def _ordered(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda name: (name != "main", name))


def _canonical(maps: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Renumber inodes across all processes at once: a MAP_SHARED region
    keeps one number in parent and child, as it keeps one inode."""
    names = _ordered(maps.keys())
    flat = canonical_inodes([line for name in names for line in maps[name]])
    out = {}
    for name in names:
        out[name], flat = flat[: len(maps[name])], flat[len(maps[name]) :]
    return out
