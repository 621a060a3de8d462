"""Every refusal leaves as exactly {"error": {message, type, param, code}}, with a 4xx status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.engine.scripted import ScriptedEngine
from tests.conftest import Serve
from tests.helpers import MODEL, assert_error, chat, metric

URL = "/v1/chat/completions"

# (id, body, param, code) of requests that are refused with 400 before reaching the engine
BAD_BODIES: list[tuple[str, Any, str | None, str | None]] = [
    ("max_tokens_string", chat(max_tokens="5"), "max_tokens", "invalid_value"),
    ("max_tokens_zero", chat(max_tokens=0), "max_tokens", "invalid_value"),
    ("max_tokens_float", chat(max_tokens=5.0), "max_tokens", "invalid_value"),
    ("temperature_string", chat(temperature="hot"), "temperature", "invalid_value"),
    ("temperature_too_high", chat(temperature=2.5), "temperature", "invalid_value"),
    ("top_p_zero", chat(top_p=0), "top_p", "invalid_value"),
    ("stream_string", chat(stream="yes"), "stream", "invalid_value"),
    ("n_zero", chat(n=0), "n", "invalid_value"),
    ("messages_not_a_list", {"model": MODEL, "messages": "hello"}, "messages", "invalid_value"),
    ("messages_empty", {"model": MODEL, "messages": []}, "messages", "invalid_value"),
    ("messages_missing", {"model": MODEL}, "messages", "invalid_value"),
    ("model_missing", {"messages": [{"role": "user", "content": "Hi"}]}, "model", "invalid_value"),
    (
        "role_unknown",
        {"model": MODEL, "messages": [{"role": "wizard", "content": "Hi"}]},
        "messages[0].role",
        "invalid_value",
    ),
    (
        "content_part_not_text",
        chat([{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]),
        "messages[0].content",
        "invalid_value",
    ),
    ("content_number", chat(5), "messages[0].content", "invalid_value"),
    ("stop_number", chat(stop=5), "stop", "invalid_value"),
    ("stop_list_of_numbers", chat(stop=[1, 2]), "stop", "invalid_value"),
    ("too_many_stops", chat(stop=[str(i) for i in range(17)]), "stop", "invalid_value"),
    ("empty_stop", chat(stop=""), "stop", "invalid_value"),
    ("top_logprobs_too_many", chat(logprobs=True, top_logprobs=21), "top_logprobs", "invalid_value"),
    ("top_logprobs_without_logprobs", chat(top_logprobs=2), "top_logprobs", None),
    ("body_not_an_object", [chat()], None, "invalid_value"),
]


@pytest.mark.parametrize(
    ("body", "param", "code"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
async def test_invalid_bodies_are_400_naming_the_field(
    client: httpx.AsyncClient, engine: ScriptedEngine, body: Any, param: str | None, code: str | None
) -> None:
    r = await client.post(URL, json=body)
    error = assert_error(r, 400, type_="invalid_request_error", code=code)
    assert error["param"] == param
    assert engine.calls == []


async def test_invalid_json(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=b'{"model": "x", ', headers={"content-type": "application/json"})
    error = assert_error(r, 400, code="invalid_json", type_="invalid_request_error")
    assert error["param"] is None
    assert "JSON" in error["message"]


async def test_invalid_utf8(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, content=b'{"model": "\xff\xfe"}', headers={"content-type": "application/json"})
    assert_error(r, 400, code="invalid_json")


async def test_empty_body(client: httpx.AsyncClient) -> None:
    assert_error(await client.post(URL), 400, code="invalid_json")


async def test_max_tokens_beyond_context(serve: Serve) -> None:
    engine = ScriptedEngine(context_length=64)
    async with serve(engine) as client:
        plain = await client.post(URL, json=chat(max_tokens=100))
        new = await client.post(URL, json=chat(max_completion_tokens=61))
        fits = await client.post(URL, json=chat(max_tokens=60))  # 64 context - 4 prompt tokens
    assert_error(plain, 400, code="context_length_exceeded", param="max_tokens")
    assert_error(new, 400, code="context_length_exceeded", param="max_completion_tokens")
    assert fits.status_code == 200, fits.text
    assert len(engine.calls) == 1


async def test_prompt_longer_than_context(serve: Serve) -> None:
    engine = ScriptedEngine(context_length=64)
    async with serve(engine) as client:
        r = await client.post(URL, json=chat("word " * 100))
    error = assert_error(r, 400, code="context_length_exceeded", param="messages")
    assert "64" in error["message"]
    assert engine.calls == []


async def test_n_above_max_n(serve: Serve) -> None:
    engine = ScriptedEngine()
    async with serve(engine, max_n=2) as client:
        refused = await client.post(URL, json=chat(n=3))
        allowed = await client.post(URL, json=chat(n=2))
    assert_error(refused, 400, param="n")
    assert allowed.status_code == 200 and len(allowed.json()["choices"]) == 2


async def test_unknown_model(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json={**chat(), "model": "gpt-4o"})
    error = assert_error(r, 404, code="model_not_found", param="model", type_="invalid_request_error")
    assert "gpt-4o" in error["message"]


async def test_unknown_route(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/nothing-here"), 404, code="not_found")
    assert_error(await client.post("/v1/embeddings", json={}), 404)


async def test_wrong_method(client: httpx.AsyncClient) -> None:
    r = await client.get(URL)
    assert_error(r, 405)
    assert r.headers["allow"] == "POST"


async def test_body_over_limit_is_413(serve: Serve) -> None:
    engine = ScriptedEngine()

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        yield b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}]}'

    async with serve(engine, max_body_bytes=2048) as client:
        declared = await client.post(URL, json=chat("x" * 3000))
        streamed = await client.post(URL, content=chunked(), headers={"content-type": "application/json"})
        small = await client.post(URL, json=chat("x" * 1500))
    assert_error(declared, 413, code="request_too_large", type_="invalid_request_error")
    assert_error(streamed, 413, code="request_too_large")
    assert small.status_code == 200, small.text
    assert len(engine.calls) == 1


async def test_refusals_never_count_as_server_errors(serve: Serve) -> None:
    """Every refusal above, sent to one app: none is a 5xx, and the metrics agree."""
    engine = ScriptedEngine(context_length=64)
    json_header = {"content-type": "application/json"}
    async with serve(engine, max_n=2, max_body_bytes=2048) as client:
        statuses = [(await client.post(URL, json=body)).status_code for _, body, _, _ in BAD_BODIES]
        statuses += [
            (await client.post(URL, content=b"{oops", headers=json_header)).status_code,
            (await client.post(URL, json=chat(max_tokens=100))).status_code,
            (await client.post(URL, json=chat("word " * 100))).status_code,
            (await client.post(URL, json=chat(n=3))).status_code,
            (await client.post(URL, json={**chat(), "model": "other"})).status_code,
            (await client.get("/v1/unknown")).status_code,
            (await client.post(URL, json=chat("x" * 3000))).status_code,
        ]
        text = (await client.get("/metrics")).text
    assert all(400 <= s < 500 for s in statuses), statuses
    assert metric(text, "ssrl_requests_total", route=URL, status="500") is None
    assert metric(text, "ssrl_requests_in_flight") == 0.0
    assert engine.calls == []
