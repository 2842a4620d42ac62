"""/api/run : the CLI's JSON for a posted scenario."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.models import RunRequest, ScenarioErrorDetail, ScenarioErrorResponse, ScenarioJSON
from app.runs import scenario_json
from engine.scenario.errors import ScenarioError

router = APIRouter(prefix="/api", tags=["api"])


@router.post(
    "/run",
    response_model=ScenarioJSON,
    responses={422: {"model": ScenarioErrorResponse, "description": "the scenario is broken"}},
)
def run(request: Request, body: RunRequest) -> Any:
    """Run a scenario; answer as `python -m engine run FILE --json` does.

    A scenario that does not parse is a 422 naming its line and column.
    """
    try:
        result = request.app.state.runs.get(body.source)
    except ScenarioError as err:
        error = ScenarioErrorResponse(
            detail=[ScenarioErrorDetail(line=err.line, col=err.col, msg=err.message)]
        )
        return JSONResponse(error.model_dump(), status_code=422)
    return scenario_json(result)
