"""Search as an OpenAI tool call (search_mode ``client``): reading the searches the caller already
ran back out of the messages it sends (which requests run in this mode, and the tool rules of each
mode, are ``service/modes.py``).

Stateless: a continuation carries its whole trajectory. Each assistant message that ended with a
search holds that request's text (``content``, or ``reasoning_content`` for a client that drops
``content``) and one ``search`` tool call; the ``tool`` message after it holds the results, as plain
text or a JSON list of ``{title, text, url}``. The server rebuilds prompt + trajectory from them and
renders each result the way ``real`` mode injects it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from service.agent.loop import PastSearch
from service.agent.prompts import clean_results
from service.agent.tags import search_action
from service.errors import InvalidRequestError
from service.protocol import SEARCH_TOOL, ChatMessage
from service.search.base import Doc


@dataclass(frozen=True)
class History:
    """The searches of earlier requests, and a final assistant message to continue from."""

    searches: list[PastSearch]
    prefill: str


def _query(arguments: str, param: str) -> str:
    try:
        data = json.loads(arguments)
    except ValueError:
        data = None
    query = data.get("query") if isinstance(data, dict) else None
    if not isinstance(query, str) or not query.strip() or "\n" in query.strip():
        raise InvalidRequestError(
            'a search call\'s arguments must be JSON {"query": "<one line>"}',
            param=param,
            code="invalid_tool_call",
        )
    return query.strip()


def parse_results(message: ChatMessage, param: str, top_k: int, words: int) -> list[Doc]:
    """A tool message's results: plain text (one result), or a JSON list of ``{title, text, url}``;
    cleaned and clipped as ``real`` mode's results are. Empty means the search found nothing."""
    if message.content is None:
        raise InvalidRequestError(
            "a tool message needs content: the search results", param=param, code="invalid_tool_result"
        )
    text = message.text().strip()
    data: object = None
    if text[:1] in ("[", "{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None  # plain text that happens to start with a bracket
    if data is None:
        # A single text result may be as long as the top_k results it stands for.
        return clean_results([Doc("", text)], 1, words * top_k) if text else []
    if not isinstance(data, list) or not all(_is_result(d) for d in data):
        raise InvalidRequestError(
            "a tool message's content must be plain text or a JSON list of "
            '{"title": string, "text": string, "url": string}',
            param=param,
            code="invalid_tool_result",
        )
    docs = [Doc(d.get("title") or "", d["text"], d.get("url")) for d in data]
    return clean_results(docs, top_k, words)


def _is_result(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("text"), str)
        and isinstance(item.get("title", ""), str | None)
        and isinstance(item.get("url"), str | None)
    )


def _check_answered(messages: Sequence[ChatMessage], i: int) -> ChatMessage:
    """The tool message right after the assistant message ``messages[i]``, which holds tool calls."""
    answer = messages[i + 1] if i + 1 < len(messages) else None
    if answer is None or answer.role != "tool":
        call = (messages[i].tool_calls or [])[0]
        raise InvalidRequestError(
            f"the search call '{call.id}' has no tool message answering it: send "
            '{"role": "tool", "tool_call_id": ..., "content": <results>} right after it',
            param=f"messages[{i}].tool_calls[0]",
            code="tool_call_unanswered",
        )
    return answer


def read_history(messages: Sequence[ChatMessage], start: int, top_k: int, words: int) -> History:
    """The messages after the question (``messages[start:]``): pairs of an assistant message with one
    search call and the tool message answering it, optionally ending with an assistant prefill."""
    for i, message in enumerate(messages[:start]):  # an earlier exchange must be complete too
        if message.tool_calls:
            _check_answered(messages, i)
    searches: list[PastSearch] = []
    prefill = ""
    i = start
    while i < len(messages):
        message = messages[i]
        where = f"messages[{i}]"
        if message.role in ("system", "developer"):
            i += 1
            continue
        if message.role == "tool":
            raise InvalidRequestError(
                f"tool message with tool_call_id '{message.tool_call_id}' matches no search call of the "
                "assistant message before it",
                param=f"{where}.tool_call_id",
                code="unknown_tool_call",
            )
        if message.role != "assistant":
            raise InvalidRequestError(
                "after the question only assistant and tool messages may follow", param=where
            )
        if not message.tool_calls:
            if i != len(messages) - 1:
                raise InvalidRequestError(
                    "an assistant message without a search call can only be the last message (a prefill)",
                    param=where,
                )
            prefill = message.text() or message.reasoning or message.reasoning_content or ""
            break
        if len(message.tool_calls) != 1:
            raise InvalidRequestError(
                "the service asks for one search per assistant message; this one has "
                f"{len(message.tool_calls)} tool calls",
                param=f"{where}.tool_calls",
                code="invalid_tool_call",
            )
        call = message.tool_calls[0]
        if call.function.name != SEARCH_TOOL:
            raise InvalidRequestError(
                f"unknown tool '{call.function.name}': the only tool is '{SEARCH_TOOL}'",
                param=f"{where}.tool_calls[0].function.name",
                code="invalid_tool_call",
            )
        query = _query(call.function.arguments, f"{where}.tool_calls[0].function.arguments")
        segment = message.text() or message.reasoning or message.reasoning_content or ""
        if not segment.strip():
            segment = f"<search> {query} </search>"  # a client that kept only the tool call
        elif search_action(segment) is None:
            raise InvalidRequestError(
                "an assistant message with a search call must hold the text this service returned with "
                "it, ending with <search> query </search>",
                param=f"{where}.content",
                code="invalid_tool_call",
            )
        answer = _check_answered(messages, i)
        if answer.tool_call_id != call.id:
            raise InvalidRequestError(
                f"tool message with tool_call_id '{answer.tool_call_id}' matches no search call "
                f"(the call before it is '{call.id}')",
                param=f"messages[{i + 1}].tool_call_id",
                code="unknown_tool_call",
            )
        docs = parse_results(answer, f"messages[{i + 1}].content", top_k, words)
        searches.append(PastSearch(segment=segment, query=query, docs=docs))
        i += 2
    return History(searches, prefill)
