"""POST /v1/completions: plain text completions (always search mode off), as vLLM serves them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.affinity import session_key
from service.completions import PlainCompletion, prepare_completion
from service.errors import NotFoundError
from service.protocol import CompletionRequest, ErrorResponse, TextCompletion
from service.state import Authenticated, State
from service.transport import Completion, parse_completion_request, read_body, respond

router = APIRouter(dependencies=[Authenticated])

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429, 500, 503)}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CompletionRequest.model_json_schema()}},
    }
}


@router.post(
    "/v1/completions",
    response_model=TextCompletion,
    responses=_ERRORS,  # type: ignore[arg-type]
    openapi_extra=_BODY,
)
async def create_completion(request: Request, state: State) -> Response:
    body = await read_body(request, state.settings.max_body_bytes)
    completion_request = parse_completion_request(body)
    if completion_request.model != state.model_name:
        raise NotFoundError(
            f"the model '{completion_request.model}' does not exist; this server serves '{state.model_name}'",
            param="model",
            code="model_not_found",
        )
    engine = state.ready_engine()

    async def prepare() -> Completion:
        prepared = prepare_completion(
            completion_request, engine, state.settings, state.model_name, session_key(request)
        )
        return PlainCompletion(prepared, engine, state.metrics)

    return await respond(
        request,
        prepare,
        stream=completion_request.stream,
        acquire=state.limiter.acquire,
        release=state.limiter.release,
    )
