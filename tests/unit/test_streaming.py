"""Server-sent events of chat.completion.chunk, parsed by hand, and engine failures."""

from __future__ import annotations

import json
from typing import Any

import httpx

from service.engine.scripted import ScriptedEngine
from tests.conftest import Serve
from tests.helpers import (
    HI_PROMPT_TOKENS,
    MODEL,
    SCRIPTED_TEXT,
    SCRIPTED_TOKENS,
    assert_error,
    assert_error_body,
    chat,
    sse_json,
    sse_payloads,
)

URL = "/v1/chat/completions"


def content_of(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["delta"]["content"] or "" for chunk in chunks for c in chunk["choices"] if c["index"] == index
    )


async def test_stream_format(client: httpx.AsyncClient, engine: ScriptedEngine) -> None:
    r = await client.post(URL, json=chat(stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    chunks = sse_json(r.text)
    assert len(chunks) >= 2
    ids = {c["id"] for c in chunks}
    assert ids == {r.headers["x-request-id"]} and r.headers["x-request-id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(ch["delta"]["role"] is None for c in chunks[1:] for ch in c["choices"])
    assert content_of(chunks) == SCRIPTED_TEXT
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"]]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1 and set(finishes) == {None, "stop"}
    assert all(c["usage"] is None for c in chunks)  # no include_usage: no usage anywhere
    assert all(c["choices"] for c in chunks)
    assert engine.num_unfinished_requests() == 0


async def test_include_usage_adds_a_final_usage_chunk(client: httpx.AsyncClient) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    chunks = sse_json((await client.post(URL, json=body)).text)
    *choice_chunks, last = chunks
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == HI_PROMPT_TOKENS
    assert last["usage"]["completion_tokens"] == SCRIPTED_TOKENS
    assert last["usage"]["total_tokens"] == HI_PROMPT_TOKENS + SCRIPTED_TOKENS
    assert choice_chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["usage"] is None for c in choice_chunks)
    assert content_of(choice_chunks) == SCRIPTED_TEXT


async def test_include_usage_false_has_no_usage_chunk(client: httpx.AsyncClient) -> None:
    body = chat(stream=True, stream_options={"include_usage": False})
    chunks = sse_json((await client.post(URL, json=body)).text)
    assert all(c["choices"] and c["usage"] is None for c in chunks)


async def test_stream_max_tokens_ends_with_length(client: httpx.AsyncClient) -> None:
    body = chat(stream=True, max_tokens=2, stream_options={"include_usage": True})
    chunks = sse_json((await client.post(URL, json=body)).text)
    assert content_of(chunks) == "Hello from"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


async def test_stream_with_n_choices(serve: Serve) -> None:
    engine = ScriptedEngine(["alpha beta", "gamma delta"])
    async with serve(engine) as client:
        body = chat(stream=True, n=2, stream_options={"include_usage": True})
        chunks = sse_json((await client.post(URL, json=body)).text)
    assert sorted(ch["index"] for ch in chunks[0]["choices"]) == [0, 1]
    assert {ch["delta"]["role"] for ch in chunks[0]["choices"]} == {"assistant"}
    assert sorted([content_of(chunks, 0), content_of(chunks, 1)]) == ["alpha beta", "gamma delta"]
    for index in (0, 1):
        finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["index"] == index]
        assert finishes.count("stop") == 1
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert engine.num_unfinished_requests() == 0


async def test_stream_logprobs(client: httpx.AsyncClient) -> None:
    chunks = sse_json((await client.post(URL, json=chat(stream=True, logprobs=True, top_logprobs=2))).text)
    entries = [e for c in chunks[1:] for ch in c["choices"] for e in ch["logprobs"]["content"]]
    assert "".join(e["token"] for e in entries) == SCRIPTED_TEXT
    assert all(len(e["top_logprobs"]) == 2 for e in entries)


async def test_engine_failure_mid_stream_sends_an_error_frame(serve: Serve) -> None:
    engine = ScriptedEngine(fail_after_tokens=2)
    async with serve(engine) as client:
        r = await client.post(URL, json=chat(stream=True, stream_options={"include_usage": True}))
        assert r.status_code == 200  # the headers were sent before the failure
        payloads = sse_payloads(r.text)
        assert engine.num_unfinished_requests() == 0
        several = sse_payloads((await client.post(URL, json=chat(stream=True, n=3))).text)
        assert engine.num_unfinished_requests() == 0

        engine.fail_after_tokens = None
        again = await client.post(URL, json=chat(stream=True))
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    *chunks, error_frame = [json.loads(p) for p in payloads[:-1]]
    assert_error_body(error_frame, code="engine_error", type_="server_error")
    assert content_of(chunks) == "Hello from"  # what came before the failure
    assert all("error" not in c for c in chunks)
    assert all(c["usage"] is None for c in chunks)
    assert content_of(sse_json(again.text)) == SCRIPTED_TEXT
    assert engine.num_unfinished_requests() == 0
    assert several[-1] == "[DONE]"
    assert_error_body(json.loads(several[-2]), code="engine_error")


async def test_engine_failure_without_streaming_is_500(serve: Serve) -> None:
    engine = ScriptedEngine(fail_after_tokens=2)
    async with serve(engine) as client:
        failed = await client.post(URL, json=chat())
        failed_n = await client.post(URL, json=chat(n=3))
        assert engine.num_unfinished_requests() == 0
        engine.fail_after_tokens = None
        ok = await client.post(URL, json=chat())
        metrics = (await client.get("/metrics")).text
    error = assert_error(failed, 500, code="engine_error", type_="server_error")
    assert "scripted failure" in error["message"]
    assert_error(failed_n, 500, code="engine_error")
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == SCRIPTED_TEXT
    assert 'ssrl_requests_total{route="/v1/chat/completions",status="500"} 2.0' in metrics
    assert engine.num_unfinished_requests() == 0


async def test_running_count_returns_to_zero(serve: Serve) -> None:
    engine = ScriptedEngine("a b c d e f", token_delay=0.001)
    async with serve(engine) as client:
        for body in (chat(stream=True), chat(stream=True, n=3), chat(stream=True, max_tokens=2), chat()):
            assert (await client.post(URL, json=body)).status_code == 200
            assert engine.num_unfinished_requests() == 0
    assert len(engine.calls) == 6
    assert engine.shut_down  # the lifespan shuts the engine down
