"""The server's output read with the ``openai`` package's own types, validated strictly: pydantic's
``model_validate`` on every body and every streamed event (the client itself constructs its models
leniently, so a client call alone would let a wrong shape through)."""

from __future__ import annotations

import json
import typing
from typing import Any

from openai import BaseModel as OpenAIModel
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import (
    Response,
    ResponseFunctionWebSearch,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseStreamEvent,
)

#: What each output item type must validate as.
OUTPUT_ITEMS: dict[str, type[OpenAIModel]] = {
    "reasoning": ResponseReasoningItem,
    "web_search_call": ResponseFunctionWebSearch,
    "message": ResponseOutputMessage,
}


def _event_classes() -> dict[str, type[OpenAIModel]]:
    union = typing.get_args(ResponseStreamEvent)[0]  # Annotated[Union[...], PropertyInfo(...)]
    classes: dict[str, type[OpenAIModel]] = {}
    for member in typing.get_args(union):
        for name in typing.get_args(member.model_fields["type"].annotation):
            classes[name] = member
    return classes


EVENT_CLASSES = _event_classes()


def response(body: dict[str, Any]) -> Response:
    """A ``response`` object, every output item validated as its own type."""
    parsed = Response.model_validate(body)
    for item, raw in zip(parsed.output, body["output"], strict=True):
        expected = OUTPUT_ITEMS[raw["type"]]
        assert isinstance(item, expected), (type(item), raw)
        expected.model_validate(raw)
    return parsed


def named_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The ``event:``/``data:`` pairs of a Responses stream, checking the framing: each event is an
    ``event:`` line, one ``data:`` line and a blank line, and the name is the data's ``type``."""
    assert text.endswith("\n\n"), text[-200:]
    events = []
    for block in text[:-2].split("\n\n"):
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), block
        data = json.loads(data_line[len("data: ") :])
        assert data["type"] == name_line[len("event: ") :], block
        events.append((data["type"], data))
    return events


def stream_events(text: str) -> list[OpenAIModel]:
    """Every event of a Responses stream validated as the ``openai`` class of its type, with
    ``sequence_number`` counting up from 0."""
    parsed = []
    for number, (name, data) in enumerate(named_events(text)):
        assert data["sequence_number"] == number, data
        event = EVENT_CLASSES[name].model_validate(data)
        if name in ("response.created", "response.in_progress", "response.completed", "response.incomplete"):
            response(data["response"])
        parsed.append(event)
    return parsed


def chat_completion(body: dict[str, Any]) -> ChatCompletion:
    return ChatCompletion.model_validate(body)


def chat_chunk(data: dict[str, Any]) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(data)
