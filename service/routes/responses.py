"""POST /v1/responses: the SSRL agent in the Responses API's shapes (``service/agent/responses.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.affinity import session_key
from service.agent.responses import prepare_response
from service.agent.responses_input import parse_responses_request
from service.errors import NotFoundError
from service.protocol import ErrorResponse
from service.responses_protocol import ResponseObject, ResponsesRequest
from service.state import Authenticated, State
from service.transport import Completion, named_sse_events, read_body, respond

router = APIRouter(dependencies=[Authenticated])

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429, 500, 502, 503)}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ResponsesRequest.model_json_schema()}},
    }
}


@router.post(
    "/v1/responses",
    response_model=ResponseObject,
    responses=_ERRORS,  # type: ignore[arg-type]
    openapi_extra=_BODY,
)
async def create_response(request: Request, state: State) -> Response:
    body = await read_body(request, state.settings.max_body_bytes)
    responses_request = parse_responses_request(body)
    if responses_request.model != state.model_name:
        raise NotFoundError(
            f"the model '{responses_request.model}' does not exist; this server serves '{state.model_name}'",
            param="model",
            code="model_not_found",
        )
    engine = state.ready_engine()

    async def prepare() -> Completion:
        return await prepare_response(
            responses_request,
            state.agent,
            state.metrics,
            engine,
            state.settings.default_search_mode(),
            session_key(request),
        )

    return await respond(
        request,
        prepare,
        stream=responses_request.stream,
        acquire=state.limiter.acquire,
        release=state.limiter.release,
        frame=named_sse_events,
    )
