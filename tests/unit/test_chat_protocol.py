"""The non-streaming chat-completions protocol and the model, version and metrics endpoints."""

from __future__ import annotations

import httpx

from service import __version__
from service.engine.scripted import ScriptedEngine, ScriptedReply
from tests.conftest import Serve
from tests.helpers import (
    HI_PROMPT_TOKENS,
    MODEL,
    SCRIPTED_TEXT,
    SCRIPTED_TOKENS,
    assert_error,
    chat,
    count_tokens,
    metric,
)


async def test_response_shape_and_usage(client: httpx.AsyncClient, engine: ScriptedEngine) -> None:
    r = await client.post("/v1/chat/completions", json=chat())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"].startswith("chatcmpl-") and r.headers["x-request-id"] == body["id"]
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"] == {
        "role": "assistant",
        "content": SCRIPTED_TEXT,
        "reasoning": None,
        "reasoning_content": None,
    }
    assert choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    usage = body["usage"]
    assert usage["prompt_tokens"] == HI_PROMPT_TOKENS == len(engine.calls[0].prompt_token_ids)
    assert usage["completion_tokens"] == SCRIPTED_TOKENS
    assert usage["total_tokens"] == HI_PROMPT_TOKENS + SCRIPTED_TOKENS
    # the prompt the engine saw is the rendered chat of the request's messages
    assert engine.calls[0].prompt == "<|user|>\nHi\n<|assistant|>\n"


async def test_usage_counts_every_message(client: httpx.AsyncClient) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name three colours please"},
    ]
    r = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages})
    rendered = "<|system|>\nYou are terse.\n<|user|>\nName three colours please\n<|assistant|>\n"
    assert r.json()["usage"]["prompt_tokens"] == count_tokens(rendered) == 11


async def test_max_tokens_cuts_with_finish_reason_length(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat(max_tokens=2))
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == "Hello from"
    assert body["usage"]["completion_tokens"] == 2


async def test_max_completion_tokens_takes_precedence(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    r = await client.post("/v1/chat/completions", json=chat(max_tokens=1, max_completion_tokens=3))
    body = r.json()
    assert engine.calls[0].options.max_tokens == 3
    assert body["usage"]["completion_tokens"] == 3
    assert body["choices"][0]["finish_reason"] == "length"


async def test_default_max_tokens_is_capped_by_the_context(serve: Serve) -> None:
    engine = ScriptedEngine(context_length=64)
    async with serve(engine, default_max_tokens=1000) as client:
        await client.post("/v1/chat/completions", json=chat())
    assert engine.calls[0].options.max_tokens == 64 - HI_PROMPT_TOKENS


async def test_stop_string_cuts_text_and_is_excluded(serve: Serve) -> None:
    engine = ScriptedEngine("The answer is 42. END of the reply")
    async with serve(engine) as client:
        one = (await client.post("/v1/chat/completions", json=chat(stop="END"))).json()
        many = (await client.post("/v1/chat/completions", json=chat(stop=["zzz", " 42"]))).json()
    assert one["choices"][0]["message"]["content"] == "The answer is 42. "
    assert one["choices"][0]["finish_reason"] == "stop"
    assert engine.calls[0].options.stop == ("END",)
    assert many["choices"][0]["message"]["content"] == "The answer is"
    assert engine.calls[1].options.stop == ("zzz", " 42")


async def test_n_choices_get_consecutive_seeds(serve: Serve) -> None:
    engine = ScriptedEngine(["first", "second", "third"])
    async with serve(engine) as client:
        body = (await client.post("/v1/chat/completions", json=chat(n=3, seed=100))).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert sorted(c["message"]["content"] for c in body["choices"]) == ["first", "second", "third"]
    seeds = {int(call.request_id.rsplit("-", 1)[1]): call.options.seed for call in engine.calls}
    assert seeds == {0: 100, 1: 101, 2: 102}
    assert len({call.request_id for call in engine.calls}) == 3
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["prompt_tokens"] == HI_PROMPT_TOKENS  # the prompt is counted once


async def test_sampling_options_are_passed_through(client: httpx.AsyncClient, engine: ScriptedEngine) -> None:
    await client.post(
        "/v1/chat/completions",
        json=chat(temperature=0.3, top_p=0.9, seed=7, presence_penalty=0.5, frequency_penalty=-1.5),
    )
    await client.post("/v1/chat/completions", json=chat())
    given, default = engine.calls[0].options, engine.calls[1].options
    assert (given.temperature, given.top_p, given.seed) == (0.3, 0.9, 7)
    assert (given.presence_penalty, given.frequency_penalty) == (0.5, -1.5)
    assert (default.temperature, default.top_p, default.seed) == (1.0, 1.0, None)
    assert (default.presence_penalty, default.frequency_penalty, default.logprobs) == (0.0, 0.0, None)


async def test_integer_values_for_float_fields_are_accepted(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    r = await client.post("/v1/chat/completions", json=chat(temperature=0, top_p=1, presence_penalty=1))
    assert r.status_code == 200, r.text
    assert engine.calls[0].options.temperature == 0.0


async def test_null_for_nullable_fields_means_the_default(
    client: httpx.AsyncClient, engine: ScriptedEngine
) -> None:
    nulls = dict.fromkeys(
        [
            "n",
            "stream",
            "logprobs",
            "top_logprobs",
            "presence_penalty",
            "frequency_penalty",
            "temperature",
            "top_p",
            "seed",
            "stop",
            "max_tokens",
            "stream_options",
            "user",
        ]
    )
    r = await client.post("/v1/chat/completions", json=chat(**nulls))
    assert r.status_code == 200, r.text
    assert len(r.json()["choices"]) == 1
    options = engine.calls[0].options
    assert (options.presence_penalty, options.logprobs, options.stop) == (0.0, None, ())


async def test_logprobs_shape(serve: Serve) -> None:
    engine = ScriptedEngine([ScriptedReply("one two three", logprobs=[-0.1, -0.2, -0.3])])
    async with serve(engine) as client:
        body = (await client.post("/v1/chat/completions", json=chat(logprobs=True, top_logprobs=3))).json()
    assert engine.calls[0].options.logprobs == 3
    content = body["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in content] == ["one", " two", " three"]
    assert "".join(e["token"] for e in content) == body["choices"][0]["message"]["content"]
    assert [e["logprob"] for e in content] == [-0.1, -0.2, -0.3]
    for entry in content:
        assert entry["bytes"] == list(entry["token"].encode())
        assert len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["token"] == entry["token"]
        assert all(set(t) == {"token", "logprob", "bytes"} for t in entry["top_logprobs"])


async def test_logprobs_without_top_logprobs_has_empty_alternatives(client: httpx.AsyncClient) -> None:
    body = (await client.post("/v1/chat/completions", json=chat(logprobs=True))).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == SCRIPTED_TOKENS
    assert all(e["top_logprobs"] == [] for e in content)


async def test_unknown_request_fields_are_ignored(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/chat/completions",
        json=chat(
            logit_bias={"50256": -100},
            response_format={"type": "text"},
            parallel_tool_calls=False,
            something_new={"nested": [1, 2]},
        ),
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == SCRIPTED_TEXT


async def test_content_as_text_parts(client: httpx.AsyncClient, engine: ScriptedEngine) -> None:
    parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]
    r = await client.post("/v1/chat/completions", json=chat(parts))
    assert r.status_code == 200, r.text
    assert engine.calls[0].prompt == "<|user|>\nHello world\n<|assistant|>\n"


async def test_list_models_and_get_model(client: httpx.AsyncClient, engine: ScriptedEngine) -> None:
    listing = (await client.get("/v1/models")).json()
    assert listing["object"] == "list"
    [card] = listing["data"]
    assert card["id"] == MODEL and card["object"] == "model"
    assert card["max_model_len"] == engine.context_length
    one = await client.get(f"/v1/models/{MODEL}")
    assert one.status_code == 200 and one.json() == card
    missing = await client.get("/v1/models/gpt-4o")
    assert_error(missing, 404, code="model_not_found", param="model")


async def test_served_model_name(serve: Serve) -> None:
    engine = ScriptedEngine()
    async with serve(engine, served_model_name="my-model") as client:
        ok = await client.post("/v1/chat/completions", json={**chat(), "model": "my-model"})
        old = await client.post("/v1/chat/completions", json=chat())
        cards = (await client.get("/v1/models")).json()["data"]
    assert ok.status_code == 200 and ok.json()["model"] == "my-model"
    assert_error(old, 404, code="model_not_found")
    assert [c["id"] for c in cards] == ["my-model"]


async def test_version(client: httpx.AsyncClient) -> None:
    r = await client.get("/version")
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == __version__
    assert body["model"] == MODEL
    assert "vllm" in body


async def test_metrics_count_requests_and_tokens(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    assert metric(before, "ssrl_requests_total", route="/v1/chat/completions", status="200") is None
    assert metric(before, "ssrl_engine_ready") == 1.0
    await client.post("/v1/chat/completions", json=chat())
    await client.post("/v1/chat/completions", json=chat(max_tokens=2))
    await client.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert metric(text, "ssrl_requests_total", route="/v1/chat/completions", status="200") == 2.0
    assert metric(text, "ssrl_requests_total", route="/v1/chat/completions", status="400") == 1.0
    assert metric(text, "ssrl_tokens_total", kind="prompt") == 2 * HI_PROMPT_TOKENS
    assert metric(text, "ssrl_tokens_total", kind="completion") == SCRIPTED_TOKENS + 2
    assert metric(text, "ssrl_requests_in_flight") == 0.0
    assert metric(text, "ssrl_engine_unfinished_requests") == 0.0
    assert metric(text, "ssrl_request_duration_seconds_count", route="/v1/chat/completions") == 3.0
