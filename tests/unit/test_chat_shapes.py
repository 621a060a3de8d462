"""Plain chat (search mode off): the OpenAI response shapes and how fields reach the engine."""

from __future__ import annotations

from service.engine.scripted import ScriptedEngine
from tests.conftest import serve
from tests.helpers import ask

REPLY = "Paris is the capital of France."


async def test_non_streaming_shape_and_usage() -> None:
    engine = ScriptedEngine(REPLY)
    async with serve(engine) as client:
        r = await client.post("/v1/chat/completions", json=ask())
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert r.headers["x-request-id"] == body["id"]
    assert body["model"] == "smollm2-135m-instruct"
    [choice] = body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": REPLY,
        "reasoning": None,
        "reasoning_content": None,
    }
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    usage = body["usage"]
    assert usage["completion_tokens"] == len(engine.encode(REPLY))
    assert usage["prompt_tokens"] == len(engine.calls[0].prompt_token_ids)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert engine.calls[0].prompt.endswith("<|user|>\nWhat is the capital of France?\n<|assistant|>\n")


async def test_max_tokens_and_max_completion_tokens() -> None:
    async with serve(ScriptedEngine(REPLY)) as client:
        r = await client.post("/v1/chat/completions", json=ask(max_tokens=3))
        both = await client.post("/v1/chat/completions", json=ask(max_tokens=3, max_completion_tokens=2))
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert r.json()["usage"]["completion_tokens"] == 3
    assert both.json()["usage"]["completion_tokens"] == 2


async def test_stop_strings_cut_the_text() -> None:
    async with serve(ScriptedEngine(REPLY)) as client:
        r = await client.post("/v1/chat/completions", json=ask(stop=[" of", "zzz"]))
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == "Paris is the capital"
    assert choice["finish_reason"] == "stop"


async def test_sampling_fields_reach_the_engine() -> None:
    engine = ScriptedEngine(REPLY)
    async with serve(engine) as client:
        r = await client.post(
            "/v1/chat/completions",
            json=ask(
                n=3,
                seed=41,
                temperature=0.7,
                top_p=0.9,
                presence_penalty=0.5,
                frequency_penalty=-0.5,
                user="u-1",
            ),
        )
    assert [c["index"] for c in r.json()["choices"]] == [0, 1, 2]
    options = [c.options for c in engine.calls]
    assert sorted(o.seed for o in options) == [41, 42, 43]  # the choices run concurrently
    assert {(o.temperature, o.top_p, o.presence_penalty, o.frequency_penalty) for o in options} == {
        (0.7, 0.9, 0.5, -0.5)
    }
    assert r.json()["usage"]["completion_tokens"] == 3 * len(engine.encode(REPLY))


async def test_defaults_when_fields_are_absent() -> None:
    engine = ScriptedEngine(REPLY, context_length=100)
    async with serve(engine, default_max_tokens=50) as client:
        await client.post("/v1/chat/completions", json=ask())
    options = engine.calls[0].options
    assert (options.temperature, options.top_p, options.seed, options.logprobs) == (1.0, 1.0, None, None)
    assert options.max_tokens == min(50, 100 - len(engine.calls[0].prompt_token_ids))


async def test_logprobs_shape() -> None:
    async with serve(ScriptedEngine(REPLY)) as client:
        r = await client.post("/v1/chat/completions", json=ask(logprobs=True, top_logprobs=2))
        plain = await client.post("/v1/chat/completions", json=ask(logprobs=True))
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == REPLY
    for entry in content:
        assert entry["logprob"] <= 0 and entry["bytes"] == list(entry["token"].encode())
        assert len(entry["top_logprobs"]) == 2 and entry["top_logprobs"][0]["token"] == entry["token"]
    assert all(e["top_logprobs"] == [] for e in plain.json()["choices"][0]["logprobs"]["content"])


async def test_unknown_fields_are_ignored_and_content_parts_are_joined() -> None:
    engine = ScriptedEngine(REPLY)
    body = ask(tools=[], response_format={"type": "text"}, some_future_field=1)
    body["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]}
    ]
    async with serve(engine) as client:
        r = await client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert "Hello there" in engine.calls[0].prompt


async def test_models_version_and_metrics() -> None:
    async with serve(ScriptedEngine(REPLY)) as client:
        models = (await client.get("/v1/models")).json()
        one = await client.get("/v1/models/smollm2-135m-instruct")
        version = (await client.get("/version")).json()
        await client.post("/v1/chat/completions", json=ask())
        metrics = (await client.get("/metrics")).text
    assert [m["id"] for m in models["data"]] == ["smollm2-135m-instruct"] and models["object"] == "list"
    assert one.json()["max_model_len"] == 2048
    assert version["model"] == "smollm2-135m-instruct" and version["version"]
    assert 'ssrl_requests_total{route="/v1/chat/completions",status="200"} 1.0' in metrics
    assert f'ssrl_tokens_total{{kind="completion"}} {float(len(ScriptedEngine().encode(REPLY)))}' in metrics
    assert "ssrl_requests_in_flight 0.0" in metrics
    assert "ssrl_engine_ready 1.0" in metrics
