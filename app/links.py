"""The URLs of a stage page: its steps, its twins (.json, .txt, SVGs), its share form.

One object per page, so the step controls, the scrubber, the "Copy link"
and "Copy as text" buttons and the SVG downloads all name the scenario the
same way: `query` holds what names it (`source=`, `s=`, `policy=`; empty
for a packaged scenario or a short link) and comes first in every URL,
then `test=`, the test of a harness file the page steps through.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from app.formats import SUFFIX, Format
from engine.sim.simulation import View


@dataclass(frozen=True)
class StageLinks:
    base: str
    query: dict[str, str] = field(default_factory=dict)
    embed: bool = False
    shorten: dict[str, str] | None = None
    """Hidden fields of the "Short link" form (POST /share); None on a short link."""
    shared: dict[str, str] | None = None
    """What names the scenario in the links to share (the playground's token), if not `query`."""
    test: str | None = None
    """The harness test the page steps through (a scenario has none)."""

    def _q(self, step: int, view: View, embed: bool = False, own: bool = False) -> str:
        names = self.query if own or self.shared is None else self.shared
        q = dict(names) | ({"test": self.test} if self.test else {}) | {"step": str(step)}
        if view != "step":
            q["view"] = view
        if embed:
            q["embed"] = "1"
        return urlencode(q)

    def page(self, step: int, view: View = "step") -> str:
        """A step of this page, as the controls link it (embed mode kept)."""
        return f"{self.base}?{self._q(step, view, self.embed, own=True)}"

    def link(self, step: int, view: View = "step") -> str:
        """The link to share: the whole page, never the embed."""
        return f"{self.base}?{self._q(step, view)}"

    def embedded(self, step: int, view: View = "step") -> str:
        return f"{self.base}?{self._q(step, view, True)}"

    def twin(self, fmt: str, step: int, view: View = "step") -> str:
        """The step in another format ("json", "text", "map.svg": app.formats.Format)."""
        return f"{self.base}{SUFFIX[Format(fmt)]}?{self._q(step, view)}"

    def of_test(self, name: str, step: int = 0) -> str:
        """A step of another test of the same file, as the controls link it."""
        return replace(self, test=name).page(step)

    @property
    def hidden(self) -> dict[str, str]:
        """The scrubber's hidden fields: what names the scenario, the test, and embed."""
        return (
            dict(self.query)
            | ({"test": self.test} if self.test else {})
            | ({"embed": "1"} if self.embed else {})
        )
