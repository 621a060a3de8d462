"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.chat import complete_chat, prepare_chat, stream_chat
from service.errors import NotFoundError
from service.protocol import ChatCompletion, ChatCompletionRequest, ErrorResponse
from service.state import Authenticated, State
from service.transport import (
    ClientDisconnectedError,
    EventStreamResponse,
    cancel_on_disconnect,
    parse_chat_request,
    read_body,
)

router = APIRouter(dependencies=[Authenticated])

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429, 500, 503)}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ChatCompletionRequest.model_json_schema()}},
    }
}


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses=_ERRORS,  # type: ignore[arg-type]
    openapi_extra=_BODY,
)
async def create_chat_completion(request: Request, state: State) -> Response:
    body = await read_body(request, state.settings.max_body_bytes)
    chat = parse_chat_request(body)
    if chat.model != state.model_name:
        raise NotFoundError(
            f"the model '{chat.model}' does not exist; this server serves '{state.model_name}'",
            param="model",
            code="model_not_found",
        )
    engine = state.ready_engine()
    state.limiter.acquire()
    release = state.limiter.release
    try:
        prepared = prepare_chat(chat, engine, state.settings, state.model_name)
        headers = {"X-Request-Id": prepared.completion_id}
        if chat.stream:
            response = EventStreamResponse(stream_chat(prepared, engine, state.metrics), on_close=release)
            response.headers.update(headers)
            release = None  # the response releases it when the stream ends
            return response
        try:
            completion = await cancel_on_disconnect(request, complete_chat(prepared, engine, state.metrics))
        except ClientDisconnectedError:
            return Response(status_code=499)
        return JSONResponse(completion.model_dump(mode="json"), headers=headers)
    finally:
        if release is not None:
            release()
