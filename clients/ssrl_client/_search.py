"""Bring your own search: the pieces of the client-mode loop both clients run for a ``search=`` callable.

The server stops at each search with an OpenAI tool call; the SDK calls the user's function with the
query and sends the assistant message back as it came, with a ``tool`` message holding the results.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

#: What a search function returns: plain text, or results as ``{"title", "text", "url"}`` mappings.
SearchResults = str | Sequence[Mapping[str, Any]]
SearchFunction = Callable[[str], SearchResults]
AsyncSearchFunction = Callable[[str], SearchResults | Awaitable[SearchResults]]

#: The tool the SDK declares; the server runs client mode for a request that carries it.
SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search for documents; returns the top results.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}

#: A runaway loop is a bug: the server's max_turns bounds the searches long before this.
MAX_ROUNDS = 64


def search_call(data: Mapping[str, Any]) -> tuple[dict[str, Any], str, str] | None:
    """For a response that asks for a search: the assistant message to send back, the call id and the
    query; None for a finished answer."""
    choice = data["choices"][0]
    message = choice.get("message") or {}
    calls = message.get("tool_calls") or []
    if choice.get("finish_reason") != "tool_calls" or not calls:
        return None
    call = calls[0]
    query = json.loads(call["function"]["arguments"])["query"]
    return dict(message), call["id"], query


def tool_message(call_id: str, results: SearchResults) -> dict[str, Any]:
    """The ``tool`` message answering a search call."""
    content = results if isinstance(results, str) else json.dumps([dict(r) for r in results])
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def rounds_exhausted() -> RuntimeError:
    return RuntimeError(f"the server asked for more than {MAX_ROUNDS} searches")
