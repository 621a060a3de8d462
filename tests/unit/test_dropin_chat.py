"""The chat fields clients of vLLM's and OpenAI's servers rely on: message validation, tools,
response_format, and the reasoning under both of its names (scripted engine; tests/e2e runs them on
the real model)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.engine.base import StructuredOutput
from service.engine.scripted import ScriptedEngine
from tests.conftest import serve
from tests.helpers import MODEL, assert_error, chat, sse_json

URL = "/v1/chat/completions"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def messages(*pairs: tuple[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": r, "content": c} for r, c in pairs], **extra}


BAD_MESSAGES = [
    ("user_null", messages(("user", None)), "messages[0].content"),
    ("user_empty", messages(("user", "")), "messages[0].content"),
    ("user_empty_parts", messages(("user", [])), "messages[0].content"),
    ("system_null", messages(("system", None), ("user", "Hi")), "messages[0].content"),
    (
        "third_user_null",
        messages(("user", "Hi"), ("assistant", "Hello"), ("user", None)),
        "messages[2].content",
    ),
    (
        "third_role_unknown",
        messages(("user", "Hi"), ("assistant", "Hello"), ("wizard", "Hi")),
        "messages[2].role",
    ),
    ("part_without_text", messages(("user", [{"type": "text"}])), "messages[0].content"),
]


@pytest.mark.parametrize(("body", "param"), [b[1:] for b in BAD_MESSAGES], ids=[b[0] for b in BAD_MESSAGES])
async def test_bad_messages_are_400_naming_the_message(body: dict[str, Any], param: str) -> None:
    engine = ScriptedEngine()
    async with serve(engine) as client:
        r = await client.post(URL, json=body)
    error = assert_error(r, 400, param=param, type_="invalid_request_error")
    assert error["message"].startswith(param)
    assert engine.calls == []  # nothing was generated


async def test_assistant_message_may_have_null_content() -> None:
    async with serve() as client:
        r = await client.post(URL, json=messages(("user", "Hi"), ("assistant", None), ("user", "Again")))
    assert r.status_code == 200, r.text


async def test_reasoning_is_accepted_under_either_name_and_must_agree() -> None:
    def body(**reasoning: str) -> dict[str, Any]:
        return {
            "model": MODEL,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello", **reasoning},
                {"role": "user", "content": "Again"},
            ],
        }

    engine = ScriptedEngine()
    async with serve(engine) as client:
        for accepted in (
            {"reasoning": "r"},
            {"reasoning_content": "r"},
            {"reasoning": "r", "reasoning_content": "r"},
        ):
            r = await client.post(URL, json=body(**accepted))
            assert r.status_code == 200, (accepted, r.text)
        r = await client.post(URL, json=body(reasoning="one", reasoning_content="other"))
    error = assert_error(r, 400, param="messages[1].reasoning")
    assert "reasoning_content" in error["message"]
    # the reasoning is not rendered into the prompt
    assert engine.calls[0].prompt == "<|user|>\nHi\n<|assistant|>\nHello\n<|user|>\nAgain\n<|assistant|>\n"


async def test_tools_other_than_search_are_refused_and_search_is_left_alone() -> None:
    engine = ScriptedEngine()
    async with serve(engine) as client:
        only_search = await client.post(URL, json=chat(tools=[SEARCH_TOOL]))
        mixed = await client.post(URL, json=chat(tools=[SEARCH_TOOL, WEATHER_TOOL]))
        chosen = await client.post(
            URL,
            json=chat(
                tools=[SEARCH_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}
            ),
        )
        auto = await client.post(URL, json=chat(tools=[SEARCH_TOOL], tool_choice="auto"))
    assert only_search.status_code == 200, only_search.text
    assert auto.status_code == 200, auto.text
    error = assert_error(mixed, 400, param="tools[1].function.name", code="unsupported_tool")
    assert "one tool, 'search'" in error["message"] and "'client'" in error["message"]
    assert "get_weather" in error["message"]
    error = assert_error(chosen, 400, param="tool_choice.function.name", code="unsupported_tool")
    assert "get_weather" in error["message"]
    assert len(engine.calls) == 2


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, StructuredOutput()),
        (
            {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
            StructuredOutput(json.dumps(SCHEMA)),
        ),
        ({"type": "text"}, None),
    ],
)
async def test_response_format_reaches_the_engine(response_format: dict[str, Any], expected: Any) -> None:
    engine = ScriptedEngine('{"city": "Paris", "population": 2100000}')
    async with serve(engine) as client:
        r = await client.post(URL, json=chat(response_format=response_format, n=2))
    assert r.status_code == 200, r.text
    assert [c.options.structured for c in engine.calls] == [expected, expected]


BAD_FORMATS = [
    ("unknown_type", {"type": "xml"}, "response_format.type"),
    ("schema_missing", {"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema"),
    ("json_schema_missing", {"type": "json_schema"}, "response_format.json_schema"),
    (
        "schema_invalid",
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}},
        "response_format.json_schema.schema",
    ),
    (
        "schema_not_object",
        {"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}},
        "response_format.json_schema.schema",
    ),
]


@pytest.mark.parametrize(("fmt", "param"), [b[1:] for b in BAD_FORMATS], ids=[b[0] for b in BAD_FORMATS])
async def test_bad_response_formats_are_400(fmt: dict[str, Any], param: str) -> None:
    engine = ScriptedEngine()
    async with serve(engine) as client:
        r = await client.post(URL, json=chat(response_format=fmt))
    assert_error(r, 400, param=param)
    assert engine.calls == []


@pytest.mark.parametrize("mode", ["self", "real", "entropy"])
async def test_response_format_in_agent_modes_is_400_saying_why(mode: str) -> None:
    engine = ScriptedEngine()
    async with serve(engine) as client:
        refused = await client.post(URL, json=chat(search_mode=mode, response_format={"type": "json_object"}))
        text = await client.post(
            URL, json=chat(search_mode=mode, response_format={"type": "text"}, max_tokens=8)
        )
    error = assert_error(refused, 400, param="response_format")
    assert "search_mode 'off'" in error["message"] and "<answer>" in error["message"]
    assert text.status_code == 200, text.text


async def test_a_schema_the_engine_refuses_is_400_not_500() -> None:
    engine = ScriptedEngine(refuse_input="unsupported JSON schema feature")
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
    async with serve(engine) as client:
        r = await client.post(URL, json=chat(response_format=fmt))
        streamed = await client.post(URL, json=chat(response_format=fmt, stream=True))
    error = assert_error(r, 400, type_="invalid_request_error")
    assert "unsupported JSON schema feature" in error["message"]
    frames = sse_json(streamed.text)
    assert frames[-1]["error"]["type"] == "invalid_request_error"


async def test_agent_reasoning_is_under_both_names() -> None:
    script = ["<search> capital of France </search>", "<answer> Paris </answer>"]
    async with serve(ScriptedEngine(script)) as client:
        whole = (await client.post(URL, json=chat("Capital of France?", search_mode="real"))).json()
    async with serve(ScriptedEngine(script)) as client:
        r = await client.post(URL, json=chat("Capital of France?", search_mode="real", stream=True))
    message = whole["choices"][0]["message"]
    assert message["reasoning"] == message["reasoning_content"]
    assert "<search> capital of France </search>" in message["reasoning"]
    deltas = [c["choices"][0]["delta"] for c in sse_json(r.text) if c["choices"]]
    with_reasoning = [d for d in deltas if "reasoning" in d or "reasoning_content" in d]
    assert with_reasoning
    assert all(d["reasoning"] == d["reasoning_content"] for d in with_reasoning)
    assert "".join(d["reasoning"] for d in with_reasoning) == message["reasoning"]
