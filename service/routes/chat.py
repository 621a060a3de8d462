"""POST /v1/chat/completions: plain chat (search mode off) or the SSRL agent loop."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.affinity import session_key
from service.agent.respond import AgentCompletion
from service.chat import PlainChat, prepare_chat
from service.engine.base import Engine
from service.errors import NotFoundError
from service.modes import resolve_mode
from service.protocol import ChatCompletion, ChatCompletionRequest, ErrorResponse
from service.state import Authenticated, ServiceState, State
from service.transport import Completion, parse_chat_request, read_body, respond

router = APIRouter(dependencies=[Authenticated])

_ERRORS = {code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429, 500, 502, 503)}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ChatCompletionRequest.model_json_schema()}},
    }
}


async def _completion(
    chat: ChatCompletionRequest, state: ServiceState, engine: Engine, key: str | None
) -> Completion:
    """The request, prepared for its search mode: plain chat (off) or an agent run."""
    mode = resolve_mode(chat, state.settings.default_search_mode())
    if mode == "off":
        prepared_chat = prepare_chat(chat, engine, state.settings, state.model_name, key)
        return PlainChat(prepared_chat, engine, state.metrics)
    prepared = await state.agent.prepare(chat, mode, engine, state.model_name, key)
    return AgentCompletion(prepared, state.metrics)


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
    return await respond(
        request,
        lambda: _completion(chat, state, engine, session_key(request)),
        stream=chat.stream,
        acquire=state.limiter.acquire,
        release=state.limiter.release,
    )
