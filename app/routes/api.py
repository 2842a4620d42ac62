"""/api/run : the CLI's JSON for a posted scenario."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import Runs
from app.models import RunRequest, ScenarioErrorResponse, ScenarioJSON, SuiteJSON
from app.runs import scenario_json

router = APIRouter(prefix="/api", tags=["api"])


@router.post(
    "/run",
    response_model=ScenarioJSON | SuiteJSON,
    responses={422: {"model": ScenarioErrorResponse, "description": "the scenario is broken"}},
)
def run(body: RunRequest, runs: Runs) -> Any:
    """Run a scenario (or a kselftest harness file, every test); answer as
    `python -m engine run FILE --json` does.

    A scenario that does not parse is a 422 naming its line and column
    (app/errors.py).
    """
    return scenario_json(runs.get(body.source))
