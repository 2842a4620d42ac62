"""/api/run : the CLI's JSON for a posted scenario."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.deps import RUN_LIMITED, Runs
from app.models import RunRequest, ScenarioErrorResponse, ScenarioJSON, SuiteJSON

router = APIRouter(prefix="/api", tags=["api"])


@router.post(
    "/run",
    response_model=ScenarioJSON | SuiteJSON,
    responses={
        422: {"model": ScenarioErrorResponse, "description": "the scenario is broken"},
        429: {"description": "over RUNS_PER_CLIENT (app/limits.py); see Retry-After"},
    },
    dependencies=[RUN_LIMITED],
)
def run(body: RunRequest, runs: Runs) -> Any:
    """Run a scenario (or a kselftest harness file, every test); answer as
    `python -m engine run FILE --json` does.

    What each step created, changed and freed comes as runs of ids
    ("folio:5-2052 (2048)"); `"detail": true` lists them one by one, for
    runs within MAX_API_DETAIL_REFS (app/limits.py). The body is encoded in
    the worker that ran the scenario. A scenario that does not parse is a
    422 naming its line and column (app/errors.py).
    """
    return Response(runs.json(body.run_source, body.detail), media_type="application/json")
