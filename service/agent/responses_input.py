"""A Responses API request (``POST /v1/responses``) as the chat request the agent runtime serves:
``instructions`` and ``input`` become the messages, a ``web_search`` tool asks for real search,
``max_output_tokens`` is the trajectory's budget, ``max_tool_calls`` its most searches; the 400s name
the request's own fields. The rules: docs/sources-and-responses.md.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from service.errors import InvalidRequestError, invalid_request_from_validation
from service.protocol import (
    AgentMode,
    ChatCompletionRequest,
    ChatMessage,
    SearchMode,
    SearchOptions,
    WebSearchOptions,
)
from service.responses_protocol import (
    WEB_SEARCH_TOOLS,
    InputMessage,
    ResponsesRequest,
    WebSearchToolSpec,
)

#: Items of earlier responses that a client sends back in ``input``: skipped (the trajectory they
#: hold is not replayed; the messages are what the next answer reads).
SKIPPED_ITEMS = ("reasoning", "web_search_call")
#: The parts a message's content may hold (an echoed answer's is ``output_text``).
TEXT_PARTS = ("input_text", "output_text", "text")
#: Chat parameters as the Responses API names them, for the errors the agent runtime raises.
_PARAMS = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
}


def parse_responses_request(body: bytes) -> ResponsesRequest:
    try:
        return ResponsesRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request_from_validation(exc) from None


def _at(where: str, exc: ValidationError) -> InvalidRequestError:
    """A validation error of one part of the body, located under ``where``."""
    error = invalid_request_from_validation(exc)
    error.param = f"{where}.{error.param}" if error.param else where
    error.message = f"{where}.{error.message}" if exc.errors()[0].get("loc") else f"{where}: {error.message}"
    return error


def refuse_state(request: ResponsesRequest) -> None:
    stored = {
        "store": request.store is True,
        "previous_response_id": request.previous_response_id is not None,
        "conversation": request.conversation is not None,
        "background": request.background is True,
    }
    for param, given in stored.items():
        if given:
            raise InvalidRequestError(
                f"{param}: this server is stateless and stores no responses or conversations; send "
                "the whole conversation in 'input' (store false or absent)",
                param=param,
                code="unsupported_parameter",
            )
    if request.text and request.text.format and request.text.format.type != "text":
        raise InvalidRequestError(
            "text.format: the agent's answer is free text inside <answer> tags; structured output is "
            "served by /v1/chat/completions with search_mode 'off'",
            param="text.format",
            code="unsupported_parameter",
        )


def web_search_tools(request: ResponsesRequest) -> list[WebSearchToolSpec]:
    """The request's ``web_search`` tools; any other tool is a 400 that names it."""
    tools = []
    for index, tool in enumerate(request.tools or ()):
        where = f"tools[{index}]"
        kind = tool.get("type")
        if kind not in WEB_SEARCH_TOOLS:
            raise InvalidRequestError(
                f"{where}.type: this server's one tool on /v1/responses is web search "
                f'({{"type": "web_search"}}); it cannot run {kind!r}',
                param=f"{where}.type",
                code="unsupported_tool",
            )
        try:
            spec = WebSearchToolSpec.model_validate(tool)
        except ValidationError as exc:
            raise _at(where, exc) from None
        if spec.filters and spec.filters.get("allowed_domains"):
            raise InvalidRequestError(
                f"{where}.filters: the search backends take no domain filter",
                param=f"{where}.filters",
                code="unsupported_parameter",
            )
        tools.append(spec)
    return tools


def responses_mode(request: ResponsesRequest, searching: bool, default: SearchMode) -> AgentMode:
    """``search_mode`` when given; else, with a web_search tool, real search (the server's default
    when that is ``real`` or ``entropy``, else ``real``); else the server's default mode."""
    mode = request.search_mode
    if mode is None:
        mode = (default if default in ("real", "entropy") else "real") if searching else default
    if mode == "off":
        raise InvalidRequestError(
            "/v1/responses runs the search agent, and this request's mode is 'off' (plain chat"
            f"{', the server default' if request.search_mode is None else ''}): add tools "
            '[{"type": "web_search"}] or a search_mode, or use /v1/chat/completions for plain chat',
            param="search_mode" if request.search_mode is not None else "tools",
            code="invalid_value",
        )
    if mode == "client":
        raise InvalidRequestError(
            "search_mode 'client' (each search run by the caller as a function call) is served on "
            "/v1/chat/completions only",
            param="search_mode",
            code="invalid_value",
        )
    return mode


def input_messages(request: ResponsesRequest) -> list[ChatMessage]:
    """``instructions`` as a system message, then ``input``'s messages (a string is one user
    message); the reasoning and web_search_call items of earlier responses are skipped."""
    messages = []
    if request.instructions:
        messages.append(ChatMessage(role="system", content=request.instructions))
    items: list[dict[str, Any]] = (
        [{"role": "user", "content": request.input}] if isinstance(request.input, str) else request.input
    )
    for index, item in enumerate(items):
        where = "input" if isinstance(request.input, str) else f"input[{index}]"
        kind = item.get("type", "message")
        if kind in SKIPPED_ITEMS:
            continue
        if kind != "message":
            raise InvalidRequestError(
                f"{where}.type: input items of type {kind!r} are not served; send messages (the "
                "reasoning and web_search_call items of earlier responses are accepted and skipped)",
                param=f"{where}.type",
                code="unsupported_input_item",
            )
        _check_parts(item.get("content"), where)
        try:
            message = InputMessage.model_validate(item)
        except ValidationError as exc:
            raise _at(where, exc) from None
        if message.role == "user" and not message.text().strip():
            raise InvalidRequestError(
                f"{where}: a user message cannot be empty", param=where, code="invalid_value"
            )
        messages.append(ChatMessage(role=message.role, content=message.text()))
    if not any(m.role == "user" for m in messages):
        raise InvalidRequestError(
            "input holds no user message: the question to answer", param="input", code="invalid_value"
        )
    return messages


def _check_parts(content: object, where: str) -> None:
    """A message's parts must be text: this model reads no images, files or audio."""
    for index, part in enumerate(content if isinstance(content, list) else ()):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in TEXT_PARTS:
            raise InvalidRequestError(
                f"{where}.content[{index}].type: this model reads text only ({', '.join(TEXT_PARTS)} "
                f"parts); it cannot read {kind!r}",
                param=f"{where}.content[{index}].type",
                code="unsupported_content",
            )


def chat_request(
    request: ResponsesRequest, mode: AgentMode, tools: list[WebSearchToolSpec]
) -> ChatCompletionRequest:
    """The chat request the agent runtime serves for ``request``."""
    options = request.search or SearchOptions()
    if options.max_turns is None and request.max_tool_calls is not None:
        options = options.model_copy(update={"max_turns": request.max_tool_calls})
    size = next((tool.search_context_size for tool in tools if tool.search_context_size), None)
    return ChatCompletionRequest(
        model=request.model,
        messages=input_messages(request),
        max_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        user=request.user,
        search_mode=mode,
        search=options,
        web_search_options=WebSearchOptions(search_context_size=size) if size else None,
    )


def renamed(exc: InvalidRequestError) -> InvalidRequestError:
    """An agent-runtime error with its parameter named as the Responses API names it."""
    if exc.param:
        head, dot, rest = exc.param.partition(".")
        base = head.split("[")[0]
        if base in _PARAMS:
            exc.param = _PARAMS[base] + dot + rest
    return exc


def translate(
    request: ResponsesRequest, default: SearchMode
) -> tuple[ChatCompletionRequest, AgentMode, list[WebSearchToolSpec]]:
    """The chat request, the search mode and the web_search tools of ``request``."""
    refuse_state(request)
    tools = web_search_tools(request)
    mode = responses_mode(request, bool(tools), default)
    return chat_request(request, mode, tools), mode, tools
