"""What a route hands to the renderers: one typed context per resource.

A route parses its request, asks the engine, and builds one of these;
app/renderers/ turns it into the page, its htmx fragment, its JSON, text
and SVG twins. Every twin reads the same context, so every twin tells the
same story.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import urlencode

from fastapi import HTTPException
from pydantic import BaseModel

from app.formats import STAGE_FORMATS, Format
from app.limits import COMPARE_MAX_VARIANTS, MAX_TOKEN_CHARS
from app.links import StageLinks
from app.runs import RunCache, scenario_json
from app.share import SharedScenario
from app.store import ShareRecord
from app.views.compare import CompareView
from app.views.gallery import SERIES_STORY, PathView
from app.views.navigation import Nav, nav
from app.views.source import SourceLine, source_lines
from app.views.step import StepView, step_view
from app.views.tests import SuiteView, find_test, suite_view, test_lines
from engine.gallery import GalleryEntry
from engine.mm_types import RMAP_MODELS, RmapModel
from engine.scenario.errors import ScenarioError
from engine.sim.simulation import Run, Suite, View, rmap_model_note
from engine.variants import Variant


class Page:
    """What the HTML renderers need of a context: its template, and for an htmx
    swap the blocks of `BLOCK_TEMPLATE` it sends (later ones out of band)."""

    TEMPLATE: ClassVar[str]
    BLOCKS: ClassVar[tuple[str, ...]] = ()
    BLOCK_TEMPLATE: ClassVar[str | None] = None
    FORMATS: ClassVar[tuple[Format, ...]] = (Format.PAGE, Format.FRAGMENT)

    def template_context(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class GalleryPage(Page):
    TEMPLATE = "gallery.html"
    FORMATS = (Format.PAGE, Format.JSON, Format.TEXT)

    entries: tuple[GalleryEntry, ...]
    paths: list[PathView]

    def template_context(self) -> dict[str, Any]:
        return {"entries": self.entries, "paths": self.paths, "story": SERIES_STORY}


# --- the stepping stage ------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """A scenario's run at one inner step, as every stage page shows it.

    `error` is the ScenarioError of a source that does not parse (the page
    shows it at its line; the twins answer 422); `panel` is None when there
    is nothing to step. `name` names the SVG downloads. For a harness file
    `run` is the test the page steps through and `suite` lists them all.
    `document` gives the CLI's JSON of `run`, computed once per run
    (RunCache.derived) rather than once per step.
    """

    source: str
    links: StageLinks
    name: str
    run: Run | None
    error: ScenarioError | None
    panel: StepView | None
    nav: Nav | None
    lines: list[SourceLine]
    suite: SuiteView | None = None
    document: Callable[[], dict[str, object]] | None = None

    def template_context(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "source": self.source,
            "links": self.links,
            "base": self.links.base,
            "url": self.links.page,
            "run": self.run,
            "error": self.error,
            "stage": self.panel,
            "nav": self.nav,
            "lines": self.lines,
            "rmap_model": self.rmap_model,
            "policy": None if self.run is None else self.run.policy,
            "rmap_note": None if self.rmap_model is None else rmap_model_note(self.rmap_model),
        }

    @property
    def rmap_model(self) -> RmapModel | None:
        """The rmap model the run took (None: the source does not parse)."""
        return None if self.run is None else self.run.rmap_model

    @property
    def index(self) -> int:
        """The inner step shown (0 when there is none)."""
        return 0 if self.panel is None else self.panel.index

    def runnable(self) -> tuple[Run, StepView | None]:
        """The run, for a twin; a source that does not parse raises its ScenarioError."""
        if self.error is not None:
            raise self.error
        assert self.run is not None
        return self.run, self.panel

    def run_document(self) -> dict[str, object]:
        """The CLI's JSON document of the run (engine.present.report.run_json)."""
        run, _ = self.runnable()
        return scenario_json(run) if self.document is None else self.document()


def open_stage(
    runs: RunCache,
    source: str,
    policy: str | None,
    step: int,
    view: View,
    links: StageLinks,
    name: str,
    test: str | None = None,
) -> Stage:
    """Run `source` (from the cache) and look at inner step `step` of it; of a
    harness file, of the test `test` names (the first if None)."""
    try:
        run = runs.get(source, policy)
    except ScenarioError as err:
        lines = source_lines(source, None, None, (err.line, err.col))
        return Stage(source, links, name, None, err, None, None, lines)
    derive = _Derive(runs, runs.key(source, policy))
    if isinstance(run, Suite):
        return _test_stage(derive, run, source, step, view, links, name, test)
    if test is not None:
        raise HTTPException(404, "test= picks a test of a harness file; this is a scenario")
    document = derive.document(None, run)
    if not run.steps or not run.statements:
        lines = source_lines(source, run, None)
        return Stage(source, links, name, run, None, None, None, lines, document=document)
    step = run.clamp(step)
    panel = derive.panel(None, run, step, view)
    lines = source_lines(source, run, panel.statement.index)
    return Stage(
        source, links, name, run, None, panel, nav(run, step, links.page), lines, None, document
    )


@dataclass(frozen=True)
class _Derive:
    """What a stage derives from the run cached under `key` (of a harness file,
    from its test `test`'s run), through RunCache.derived."""

    runs: RunCache
    key: str

    def panel(self, test: str | None, run: Run, step: int, view: View) -> StepView:
        return self.runs.derived(
            self.key, ("panel", test, step, view), lambda: step_view(run, step, view)
        )

    def document(self, test: str | None, run: Run) -> Callable[[], dict[str, object]]:
        return lambda: self.runs.derived(self.key, ("json", test), lambda: scenario_json(run))


def _test_stage(
    derive: _Derive,
    suite: Suite,
    source: str,
    step: int,
    view: View,
    links: StageLinks,
    name: str,
    wanted: str | None,
) -> Stage:
    """One test of a harness file at inner step `step`, with the list of them all."""
    found = find_test(suite, wanted)
    if found is None:
        if wanted is None:  # a file without tests
            return Stage(
                source, links, name, None, None, None, None, source_lines(source, None, None)
            )
        known = ", ".join(t.name for t in suite.harness.tests)
        raise HTTPException(404, f"no test {wanted!r}; the file has: {known}")
    test, run = found
    shorten = None if links.shorten is None else links.shorten | {"test": test.name}
    links = replace(links, test=test.name, shorten=shorten)
    listed = suite_view(suite, run, links)
    name = f"{name}-{test.name}"
    document = derive.document(test.name, run)
    if not run.steps or not run.statements:
        lines = test_lines(source, suite, test, run, None)
        return Stage(source, links, name, run, None, None, None, lines, listed, document)
    step = run.clamp(step)
    panel = derive.panel(test.name, run, step, view)
    lines = test_lines(source, suite, test, run, step)
    return Stage(
        source, links, name, run, None, panel, nav(run, step, links.page), lines, listed, document
    )


@dataclass(frozen=True)
class StagePage(Page):
    BLOCKS = ("state", "stepnav", "source")
    BLOCK_TEMPLATE = "stage.html"
    FORMATS = STAGE_FORMATS

    stage: Stage

    def template_context(self) -> dict[str, Any]:
        return self.stage.template_context()


@dataclass(frozen=True)
class ScenarioPage(StagePage):
    """/scenarios/<slug>: a packaged scenario."""

    TEMPLATE = "scenario.html"

    scenario: GalleryEntry

    def template_context(self) -> dict[str, Any]:
        other = "anon_vma" if self.stage.rmap_model == "cow_context" else "cow_context"
        return {**self.stage.template_context(), "scenario": self.scenario, "rmap_other": other}


@dataclass(frozen=True)
class PlayPage(StagePage):
    """/play: one's own scenario, from the URL."""

    TEMPLATE = "play.html"

    policy: str | None
    policies: dict[str, str]
    rmap: RmapModel | None = None
    """The rmap model chosen for the run (None: the source's own)."""

    def template_context(self) -> dict[str, Any]:
        return {
            **self.stage.template_context(),
            "policy": self.policy,
            "policies": self.policies,
            "rmap": self.rmap,
            "rmap_models": RMAP_MODELS,
        }


class Drift(BaseModel):
    """How the story the link was made with compares with today's engine's."""

    engine: str
    today: str
    statement: int | None
    """0-based statement (of a harness file: test) where the stories part; None when they agree."""
    test: str | None = None
    """Of a harness file: the first test whose story differs."""


@dataclass(frozen=True)
class SharedPage(StagePage):
    """/s/<id>: a short link's scenario, and how today's engine retells it."""

    TEMPLATE = "shared.html"

    ident: str
    record: ShareRecord
    scenario: SharedScenario
    token: str
    drift: Drift

    def template_context(self) -> dict[str, Any]:
        return {
            **self.stage.template_context(),
            "ident": self.ident,
            "record": self.record,
            "scenario": self.scenario,
            "token": self.token,
            "editable": len(self.token) <= MAX_TOKEN_CHARS,
            "drift": self.drift,
        }


# --- compare -------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparePage(Page):
    """/compare/<slug>: one scenario under several variants, at one statement."""

    TEMPLATE = "compare.html"
    BLOCKS = ("comparison",)
    FORMATS = (Format.PAGE, Format.FRAGMENT, Format.JSON, Format.TEXT)

    scenario: GalleryEntry
    names: tuple[str, ...]
    variants: dict[str, Variant]
    runs: tuple[Run, ...]
    sources: tuple[str, ...]
    compare: CompareView | None
    """None when the scenario has no statements."""

    def url(self, stmt: int, step: int | None = None, names: tuple[str, ...] | None = None) -> str:
        """This page at statement `stmt`, inner step `step` (None: after it)."""
        query: list[tuple[str, str | int]] = [("v", n) for n in (names or self.names)]
        query.append(("stmt", stmt))
        if step is not None:
            query.append(("step", step))
        return f"/compare/{self.scenario.slug}?{urlencode(query)}"

    def twin(self, suffix: str) -> str:
        """The JSON or text twin of what the page shows."""
        index = self.compare.index if self.compare else 0
        step = self.compare.step if self.compare else None
        return self.url(index, step).replace(
            f"/compare/{self.scenario.slug}?", f"/compare/{self.scenario.slug}{suffix}?"
        )

    def template_context(self) -> dict[str, Any]:
        policies = tuple(n for n in self.variants if n.startswith("policy-"))
        return {
            "scenario": self.scenario,
            "names": self.names,
            "variants": self.variants,
            "runs": self.runs,
            "sources": self.sources,
            "url": self.url,
            "twin": self.twin,
            "compare": self.compare,
            "policies": policies,
            "max_variants": COMPARE_MAX_VARIANTS,
            "rmap_proposal": any(run.rmap_model == "cow_context" for run in self.runs),
            "rmap_note": rmap_model_note("cow_context"),
        }
