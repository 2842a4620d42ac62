"""Line up the simulator's steps with the real kernel's and list differences.

Both sides are the JSON contract's steps ({"line", "source", "process",
"result", "value", "maps"}), with resident pages per VMA, page-table
pages (VmPTE: the simulator's tables together with those the executor's
own mappings held, which a scenario's table may share) and, when
recorded, every populated page ("pages", "anon_huge"). Shared-anonymous
inode numbers are renumbered on both sides first, since the real kernel
hands out fresh ones every run; fork's value (a pid) is never compared,
only mmap's and mremap's addresses. Pages are compared by their sharing
structure, never by PFN: folios are renumbered A, B, ... in the order
they first appear (processes main first, then by name; pages by address),
so "the child's page maps the parent's folio B at position 3" is what
both sides must agree on. Only the fields the real side could read
(ProcessPages.fields) are compared.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from engine.sim.backend import PAGE_FIELDS, PageRecord, ProcessPages, ProcessTables
from engine.verify.real import canonical_inodes

WIDTH = 75
ADDRESS_CALLS = ("mmap", "mremap")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
PAGES_SHOWN = 8  # differing pages listed per process and statement


@dataclass(frozen=True)
class Difference:
    """One way a statement's outcome differs between the two kernels.

    `what` is "result", "value", "maps:NAME", "resident:NAME",
    "page_tables:NAME", "pages:NAME", "anon_huge:NAME" or "steps" (one side ran more
    statements). Each side holds the compared text: one item for a result
    or value, the maps lines for maps, one line per differing page or VMA,
    None where that side has no such process or step.
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
        if ":" in self.what:
            kind = self.what.partition(":")[0]
            body = [f"  {kind} of {self._process} (- simulated, + real):"]
            for sim, real in zip(self.simulated, self.real, strict=True):
                body += [f"  - {sim}", f"  + {real}"]
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
            out.extend(
                _per_vma(
                    line,
                    source,
                    f"resident:{name}",
                    sim["resident"].get(name, {}),
                    real["resident"].get(name, {}),
                    "pages",
                    missing=None,
                )
            )
        if (
            sim_lines == real_lines
            and name in sim.get("page_tables", {}).keys() & real.get("page_tables", {}).keys()
        ):
            found = _compare_tables(sim["page_tables"][name], real["page_tables"][name])
            if found is not None:
                out.append(Difference(line, source, f"page_tables:{name}", *found))
    if "pages" in sim and "pages" in real:
        same = {n for n in sim_maps.keys() & real_maps.keys() if sim_maps[n] == real_maps[n]}
        out += _compare_pages(line, source, sim, real, same)
    return out


def _compare_tables(
    sim: ProcessTables, real: ProcessTables
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Both sides' page-table pages, when they differ: the simulator's
    tables counted together with the executor's own (`real.own`)."""
    seen = sim.pages if sim.tables is None else sim.tables.union(real.own).pages
    if seen == real.pages:
        return None
    detail = ""
    if sim.tables is not None:
        t = sim.tables
        detail = (
            f": {len(t.pte)} PTE, {len(t.pmd)} PMD, {len(t.pud)} PUD tables,"
            f" with the executor's own {real.own.pages}"
        )
    return (f"{seen} page-table pages{detail}",), (f"{real.pages} page-table pages (VmPTE)",)


def _compare_pages(
    line: int,
    source: str,
    sim: Mapping[str, Any],
    real: Mapping[str, Any],
    names: set[str],
) -> list[Difference]:
    """Page by page, in the processes whose maps agree (else maps said it)."""
    sim_pages, real_pages = canonical_pages(sim["pages"]), canonical_pages(real["pages"])
    out = []
    for name in _ordered(names):
        if name not in sim["pages"] or name not in real["pages"]:
            continue
        mine, theirs = sim_pages[name], real_pages[name]
        known = set(sim["pages"][name].fields) & set(real["pages"][name].fields)
        fields = tuple(f for f in PAGE_FIELDS if f in known)
        differ = [
            addr
            for addr in sorted(mine.keys() | theirs.keys())
            if _view(mine.get(addr), fields) != _view(theirs.get(addr), fields)
        ]
        if differ:
            shown = differ[:PAGES_SHOWN]
            more = len(differ) - len(shown)
            sim_lines = [_describe(addr, mine.get(addr), fields) for addr in shown]
            real_lines = [_describe(addr, theirs.get(addr), fields) for addr in shown]
            if more:
                sim_lines.append(f"... and {more} more page{'s' if more > 1 else ''}")
                real_lines.append("...")
            out.append(
                Difference(line, source, f"pages:{name}", tuple(sim_lines), tuple(real_lines))
            )
        sim_huge: ProcessPages = sim["pages"][name]
        real_huge: ProcessPages = real["pages"][name]
        out.extend(
            _per_vma(
                line,
                source,
                f"anon_huge:{name}",
                sim_huge.anon_huge,
                real_huge.anon_huge,
                "PMD-mapped pages",
                missing=0,
            )
        )
    return out


def _per_vma(
    line: int,
    source: str,
    what: str,
    sim: Mapping[str, int],
    real: Mapping[str, int],
    unit: str,
    missing: int | None,
) -> list[Difference]:
    """One Difference listing the VMAs whose count differs (a VMA absent
    on one side counts as `missing`), or none."""
    differ = sorted(
        v for v in sim.keys() | real.keys() if sim.get(v, missing) != real.get(v, missing)
    )
    if not differ:
        return []
    return [
        Difference(
            line,
            source,
            what,
            tuple(f"{v} {sim.get(v, missing)} {unit}" for v in differ),
            tuple(f"{v} {real.get(v, missing)} {unit}" for v in differ),
        )
    ]


Canonical = dict[str, Any]


def canonical_pages(pages: Mapping[str, ProcessPages]) -> dict[str, dict[int, Canonical]]:
    """Each process's pages by address, folios renamed A, B, ... by first
    appearance, so the two kernels' numbering (folio ids, PFNs) drops out."""
    labels: dict[int, str] = {}
    out: dict[str, dict[int, Canonical]] = {}
    for name in _ordered(pages.keys()):
        by_addr: dict[int, Canonical] = {}
        for record in pages[name].pages:
            view = _fields(record)
            if record.folio is not None:
                view["folio"] = labels.setdefault(record.folio, _label(len(labels)))
            by_addr[record.addr] = view
        out[name] = by_addr
    return out


def _fields(record: PageRecord) -> Canonical:
    view = {f: getattr(record, f) for f in PAGE_FIELDS}
    if view["entry"] != "present":
        # A swap or migration entry: pagemap says PM_SWAP, nothing more.
        return {f: ("swap" if f == "entry" else None) for f in PAGE_FIELDS}
    return view


def _view(page: Canonical | None, fields: tuple[str, ...]) -> tuple[object, ...] | None:
    if page is None:
        return None
    if page["entry"] != "present":
        return (page["entry"],)
    return tuple(page[f] for f in fields)


def _label(n: int) -> str:
    """A, B, ..., Z, AA, AB, ...: a folio's name in a comparison."""
    name = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def _describe(addr: int, page: Canonical | None, fields: tuple[str, ...]) -> str:
    """One page as a comparison line: what the compared fields say."""
    if page is None:
        return f"{addr:x} not populated"
    if page["entry"] != "present":
        return f"{addr:x} {page['entry']} entry"
    parts = [f"{addr:x}"]
    if "zero" in fields and page["zero"]:
        parts.append(f"{page['zero'].replace('_', ' ')} page")
    elif "folio" in fields:
        parts.append(f"folio {page['folio']} page {page['page_in_folio']}/{1 << page['order']}")
        parts.append("anon" if page["anon"] else "shmem")
    if "mapcount" in fields:
        parts.append(f"mapcount {page['mapcount']}")
    parts.append("exclusive" if page["exclusive"] else "not exclusive")
    return " ".join(parts)


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
