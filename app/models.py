"""The API's pydantic models: what POST /api/run takes and gives."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.limits import MAX_SOURCE
from engine.mm_types import RmapModel
from engine.variants import apply


def with_rmap_model(source: str, model: RmapModel | None) -> str:
    """`source` run under `model` (its `// @rmap` line set so); as is for None."""
    return source if model is None else apply(f"rmap-{model}", source)


class RunRequest(BaseModel):
    """A scenario to run, as text in the scenario language."""

    source: str = Field(
        max_length=MAX_SOURCE, examples=["char *p = mmap(NULL, 4096, 3, 0x22, -1, 0);"]
    )
    rmap_model: RmapModel | None = Field(
        None,
        description="rmap model: anon_vma (Linux 6.18) or cow_context (the COW-context"
        " proposal, branch project/cow-context at a4ac1966: a proof of concept, no kernel"
        " runs it); sets the source's `// @rmap` line; default: that line, else anon_vma",
        examples=["cow_context"],
    )
    detail: bool = Field(
        False,
        description="list created/changed/freed objects one by one (within MAX_API_DETAIL_REFS)",
    )

    @property
    def run_source(self) -> str:
        """The source as run: under `rmap_model`, if given."""
        return with_rmap_model(self.source, self.rmap_model)


class StepRecord(BaseModel):
    """One statement's entry in the CLI's JSON (more keys may follow)."""

    model_config = ConfigDict(extra="allow")

    line: int
    source: str
    process: str
    result: str
    value: int | None
    maps: dict[str, list[str]]


class ScenarioJSON(BaseModel):
    """The CLI's JSON for a whole run: `python -m engine run FILE --json`."""

    model_config = ConfigDict(extra="allow")

    steps: list[StepRecord]
    error: str | None = None


class Assertions(BaseModel):
    passed: int
    failed: int


class HarnessTestJSON(BaseModel):
    """One test of a harness file: how it ended, and its steps."""

    name: str
    result: str = Field(description='"pass", "fail" or "skip"')
    reason: str | None
    assertions: Assertions
    steps: list[StepRecord]


class SuiteJSON(BaseModel):
    """A harness file's JSON: `python -m engine run FILE --json`."""

    tests: list[HarnessTestJSON]
    notes: list[dict[str, int | str]]


class ScenarioErrorDetail(BaseModel):
    """Where a scenario is broken: 1-based line and column, and why."""

    line: int
    col: int
    msg: str
    loc: list[str] = ["body", "source"]
    type: str = "scenario_error"


class ScenarioErrorResponse(BaseModel):
    detail: list[ScenarioErrorDetail]
