"""Which search mode a chat request runs in, and the tool rules of each mode, in one place.

This model serves one tool, ``search`` (the ``client`` mode: the model writes a query, the caller runs
it and sends the results back in a tool message). A request naming any other tool is refused at
parse time (``check_tool_names``); a request whose mode is decided (``resolve_mode``) is then held to
that mode's rules (``check_mode_tools``): client mode needs the ``search`` function among its tools,
the other agent modes take no tool calls or tool messages. Reading the caller's searches back out of
a client-mode conversation is ``agent/tool_calls.py``.
"""

from __future__ import annotations

from service.errors import InvalidRequestError
from service.protocol import (
    AGENT_MODES,
    SEARCH_TOOL,
    AgentMode,
    ChatCompletionRequest,
    NamedToolChoice,
    SearchMode,
)

#: The tool a client declares (what the SDK sends; any schema with a string ``query`` will do).
SEARCH_TOOL_SPEC = {
    "type": "function",
    "function": {
        "name": SEARCH_TOOL,
        "description": "Search the web or a private index; returns the top results.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "one-line search query"}},
            "required": ["query"],
        },
    },
}


def _declares_search(request: ChatCompletionRequest) -> bool:
    return any(tool.function.name == SEARCH_TOOL for tool in request.tools or ())


def _carries_tool_results(request: ChatCompletionRequest) -> bool:
    return any(m.role == "tool" or m.tool_calls for m in request.messages)


def resolve_mode(request: ChatCompletionRequest, default: SearchMode) -> SearchMode:
    """The request's search mode: its own ``search_mode``; else ``client`` when the server's default
    is an agent mode and the request declares a ``search`` tool or answers one; else the default."""
    if request.search_mode is not None:
        return request.search_mode
    if default in AGENT_MODES and (_declares_search(request) or _carries_tool_results(request)):
        return "client"
    return default


def _unsupported_tool(name: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{param}: this model serves one tool, '{SEARCH_TOOL}' (the 'client' search mode: the model "
        f"writes a search query, the client runs it and sends the results back in a tool message); "
        f"it cannot call '{name}'",
        param=param,
        code="unsupported_tool",
    )


def check_tool_names(request: ChatCompletionRequest) -> None:
    """In every mode: a tool or a named tool choice other than ``search`` is ``unsupported_tool``."""
    for index, tool in enumerate(request.tools or ()):
        if tool.function.name != SEARCH_TOOL:
            raise _unsupported_tool(tool.function.name, f"tools[{index}].function.name")
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice) and choice.function.name != SEARCH_TOOL:
        raise _unsupported_tool(choice.function.name, "tool_choice.function.name")


def check_mode_tools(request: ChatCompletionRequest, mode: AgentMode) -> None:
    """An agent request's tools and tool messages, for its mode: client mode needs the ``search``
    function among the tools when tools are given at all; the other modes take no tool calls or
    tool messages."""
    if mode == "client":
        if request.tools is None or _declares_search(request):
            return
        names = ", ".join(repr(t.function.name) for t in request.tools) or "none"
        raise InvalidRequestError(
            f"search_mode 'client' needs a function named '{SEARCH_TOOL}' in tools "
            f'(parameters {{"query": string}}); tools has {names}',
            param="tools",
            code="missing_search_tool",
        )
    for i, message in enumerate(request.messages):
        if message.role == "tool" or message.tool_calls:
            raise InvalidRequestError(
                f"tool calls and tool messages need search_mode 'client' (this request is '{mode}')",
                param=f"messages[{i}]",
            )
