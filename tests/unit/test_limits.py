"""The in-flight limit: requests over it are refused with 429 at once, never queued."""

from __future__ import annotations

import asyncio

from service.engine.scripted import ScriptedEngine
from tests.conftest import Serve
from tests.helpers import assert_error, chat, metric, sse_json, wait_until

URL = "/v1/chat/completions"
LONG_REPLY = " ".join(f"w{i}" for i in range(20))  # 20 tokens, 1 s at 0.05 s a token


async def test_over_the_limit_is_429_until_requests_finish(serve: Serve) -> None:
    engine = ScriptedEngine(LONG_REPLY, token_delay=0.05)
    async with serve(engine, max_concurrency=2) as client:
        streams = [asyncio.create_task(client.post(URL, json=chat(stream=True))) for _ in range(2)]
        await wait_until(lambda: engine.num_unfinished_requests() == 2)
        during = (await client.get("/metrics")).text

        refused = await client.post(URL, json=chat())
        refused_stream = await client.post(URL, json=chat(stream=True))

        first, second = await asyncio.gather(*streams)
        after = await client.post(URL, json=chat())
        text = (await client.get("/metrics")).text

    for r in (refused, refused_stream):
        error = assert_error(r, 429, code="rate_limit_exceeded", type_="rate_limit_error")
        assert r.headers["retry-after"] == "1"
        assert "2" in error["message"]
    for r in (first, second):
        assert r.status_code == 200
        chunks = sse_json(r.text)
        assert (
            "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"]) == LONG_REPLY
        )
    assert after.status_code == 200, after.text
    assert len(engine.calls) == 3  # the refused requests never reached the engine

    assert metric(during, "ssrl_requests_in_flight") == 2.0
    assert metric(during, "ssrl_engine_unfinished_requests") == 2.0
    assert metric(text, "ssrl_requests_in_flight") == 0.0
    assert metric(text, "ssrl_requests_rejected_total", reason="concurrency") == 2.0
    assert metric(text, "ssrl_requests_total", route=URL, status="429") == 2.0
    assert engine.num_unfinished_requests() == 0


async def test_refused_and_failed_requests_release_their_slot(serve: Serve) -> None:
    engine = ScriptedEngine(context_length=64)
    async with serve(engine, max_concurrency=1) as client:
        for _ in range(3):  # admitted, then refused by the context check: the slot must come back
            assert (await client.post(URL, json=chat(max_tokens=1000))).status_code == 400
        engine.fail_after_tokens = 1
        assert (await client.post(URL, json=chat())).status_code == 500
        assert (await client.post(URL, json=chat(stream=True))).status_code == 200
        engine.fail_after_tokens = None
        ok = await client.post(URL, json=chat())
        text = (await client.get("/metrics")).text
    assert ok.status_code == 200, ok.text
    assert metric(text, "ssrl_requests_in_flight") == 0.0
    assert metric(text, "ssrl_requests_rejected_total", reason="concurrency") is None


async def test_sequential_requests_never_hit_the_limit(serve: Serve) -> None:
    engine = ScriptedEngine()
    async with serve(engine, max_concurrency=1) as client:
        statuses = [(await client.post(URL, json=chat(stream=i % 2 == 0))).status_code for i in range(6)]
    assert statuses == [200] * 6
