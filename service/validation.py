"""OpenAI's request checks that the wire types alone do not express: message contents by role,
reasoning under its two names, the one tool this model serves (``modes.check_tool_names``), and
``response_format``'s schema."""

from __future__ import annotations

import json

from jsonschema import SchemaError
from jsonschema.validators import validator_for

from service.engine.base import StructuredOutput
from service.errors import InvalidRequestError
from service.modes import check_tool_names
from service.protocol import ChatCompletionRequest, ChatMessage, ResponseFormat

_NEEDS_CONTENT = ("system", "developer", "user")


def _check_message(index: int, message: ChatMessage) -> None:
    where = f"messages[{index}]"
    if message.role in _NEEDS_CONTENT:
        if message.content is None:
            raise InvalidRequestError(
                f"{where}.content: a {message.role} message needs content (a string or a list of "
                "text parts), not null",
                param=f"{where}.content",
                code="invalid_value",
            )
        if message.role == "user" and not message.content:
            raise InvalidRequestError(
                f"{where}.content: a user message cannot be empty",
                param=f"{where}.content",
                code="invalid_value",
            )
    both = message.reasoning is not None and message.reasoning_content is not None
    if both and message.reasoning != message.reasoning_content:
        raise InvalidRequestError(
            f"{where}: 'reasoning' and 'reasoning_content' are two names for the same text; send "
            "one, or the same text in both",
            param=f"{where}.reasoning",
            code="invalid_value",
        )


def structured_output(response_format: ResponseFormat | None) -> StructuredOutput | None:
    """The engine constraint ``response_format`` asks for (None for free text); a schema that is
    missing or not a valid JSON Schema is a 400."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return StructuredOutput()
    spec = response_format.json_schema
    if spec is None or spec.schema_ is None:
        raise InvalidRequestError(
            "response_format.json_schema.schema is required when response_format.type is 'json_schema'",
            param="response_format.json_schema",
            code="invalid_value",
        )
    try:
        validator_for(spec.schema_).check_schema(spec.schema_)
    except SchemaError as exc:
        raise InvalidRequestError(
            f"response_format.json_schema.schema is not a valid JSON Schema: {exc.message}",
            param="response_format.json_schema.schema",
            code="invalid_value",
        ) from None
    return StructuredOutput(json_schema=json.dumps(spec.schema_))


def check_chat_request(request: ChatCompletionRequest) -> None:
    """Raise the 400 OpenAI's servers give for what the types let through."""
    for index, message in enumerate(request.messages):
        _check_message(index, message)
    check_tool_names(request)
    structured_output(request.response_format)
