"""POST /v1/completions on the scripted engine: prompts (strings, batches, token ids), n, echo,
logprobs in the legacy shape, max_tokens 0, stop, streaming, usage and errors. tests/e2e checks the
same on the real model, against vLLM's own response models."""

from __future__ import annotations

from typing import Any

import pytest

from service.engine.scripted import ScriptedEngine
from tests.conftest import serve
from tests.helpers import MODEL, SCRIPTED_TEXT, SCRIPTED_TOKENS, assert_error, count_tokens, sse_json

URL = "/v1/completions"
PROMPT = "The capital of France is"


def completion(prompt: Any = PROMPT, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": prompt, **extra}


async def test_one_prompt_gives_one_text_completion() -> None:
    engine = ScriptedEngine()
    async with serve(engine, search_mode="real") as client:  # completions never run the agent
        r = await client.post(URL, json=completion(temperature=0, seed=7))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["model"] == MODEL
    [choice] = body["choices"]
    assert choice == {
        "index": 0,
        "text": SCRIPTED_TEXT,
        "logprobs": None,
        "finish_reason": "stop",
        "stop_reason": None,
    }
    assert body["usage"]["prompt_tokens"] == count_tokens(PROMPT)
    assert body["usage"]["completion_tokens"] == SCRIPTED_TOKENS
    assert body["usage"]["total_tokens"] == count_tokens(PROMPT) + SCRIPTED_TOKENS
    [call] = engine.calls
    assert call.prompt == PROMPT  # no chat template, no agent instruction
    assert call.options.max_tokens == 16 and call.options.temperature == 0 and call.options.seed == 7


async def test_batch_of_prompts_with_n_gives_prompt_major_choices() -> None:
    engine = ScriptedEngine(lambda prompt, _: f" after {prompt.split()[-1]}")
    prompts = ["one two", "three four five"]
    async with serve(engine) as client:
        r = await client.post(URL, json=completion(prompts, n=2, max_tokens=4, seed=1))
    body = r.json()
    assert [(c["index"], c["text"]) for c in body["choices"]] == [
        (0, " after two"),
        (1, " after two"),
        (2, " after five"),
        (3, " after five"),
    ]
    assert body["usage"]["prompt_tokens"] == 2 + 3  # each prompt counted once, as vLLM does
    assert body["usage"]["completion_tokens"] == 4 * 2
    assert sorted(c.options.seed for c in engine.calls) == [1, 1, 2, 2]


async def test_token_id_prompts_are_decoded_for_echo() -> None:
    engine = ScriptedEngine()
    ids = engine.encode("Hello there")
    async with serve(engine) as client:
        one = await client.post(URL, json=completion(ids, echo=True))
        many = await client.post(URL, json=completion([ids, ids[:1]], max_tokens=1))
    assert one.json()["choices"][0]["text"] == "Hello there" + SCRIPTED_TEXT
    assert [c["text"] for c in many.json()["choices"]] == ["Hello", "Hello"]
    assert engine.calls[0].prompt_token_ids == ids


async def test_echo_with_max_tokens_zero_scores_the_prompt() -> None:
    """lm-eval's loglikelihood request: prompt, echo, logprobs 1, max_tokens 0."""
    engine = ScriptedEngine()
    async with serve(engine) as client:
        r = await client.post(URL, json=completion(echo=True, logprobs=1, max_tokens=0, temperature=0))
    body = r.json()
    [choice] = body["choices"]
    assert choice["text"] == PROMPT
    lp = choice["logprobs"]
    pieces = ["The", " capital", " of", " France", " is"]
    assert lp["tokens"] == pieces
    assert lp["text_offset"] == [0, 3, 11, 14, 21]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert all(isinstance(v, float) and v < 0 for v in lp["token_logprobs"][1:])
    for token, value, top in zip(
        lp["tokens"][1:], lp["token_logprobs"][1:], lp["top_logprobs"][1:], strict=True
    ):
        assert top[token] == value and 1 <= len(top) <= 2
    assert body["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 0,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert engine.calls[0].options.prompt_logprobs == 1


async def test_echo_with_one_token_appends_its_logprob() -> None:
    async with serve(ScriptedEngine(" Paris and more")) as client:
        r = await client.post(URL, json=completion(echo=True, logprobs=2, max_tokens=1))
    choice = r.json()["choices"][0]
    assert choice["text"] == PROMPT + " Paris"
    assert choice["finish_reason"] == "length"
    lp = choice["logprobs"]
    assert lp["tokens"][-1] == " Paris" and lp["text_offset"][-1] == len(PROMPT)
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 6
    assert all(len(top) <= 3 for top in lp["top_logprobs"][1:])


async def test_logprobs_without_echo_cover_the_generated_tokens_only() -> None:
    async with serve() as client:
        r = await client.post(URL, json=completion(logprobs=0))
    lp = r.json()["choices"][0]["logprobs"]
    assert "".join(lp["tokens"]) == SCRIPTED_TEXT
    assert lp["text_offset"][0] == 0 and None not in lp["token_logprobs"]
    assert all(list(top) == [tok] for tok, top in zip(lp["tokens"], lp["top_logprobs"], strict=True))


async def test_stop_cuts_the_text_and_names_the_stop() -> None:
    async with serve() as client:
        r = await client.post(URL, json=completion(stop=[" scripted"]))
    choice = r.json()["choices"][0]
    assert choice["text"] == "Hello from the"
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] == " scripted"


async def test_streaming_matches_the_whole_answer() -> None:
    body = completion(["a b", "c"], n=2, echo=True, logprobs=1, max_tokens=3)
    async with serve() as client:
        whole = (await client.post(URL, json=body)).json()
        r = await client.post(URL, json={**body, "stream": True, "stream_options": {"include_usage": True}})
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = sse_json(r.text)
    *deltas, last = chunks
    assert last["choices"] == [] and last["usage"] == whole["usage"]
    assert all(c["object"] == "text_completion" and len(c["choices"]) == 1 for c in deltas)
    for choice in whole["choices"]:
        mine = [c["choices"][0] for c in deltas if c["choices"][0]["index"] == choice["index"]]
        assert "".join(m["text"] for m in mine) == choice["text"]
        assert mine[-1]["finish_reason"] == choice["finish_reason"]
        assert [t for m in mine for t in m["logprobs"]["tokens"]] == choice["logprobs"]["tokens"]
        assert [o for m in mine for o in m["logprobs"]["text_offset"]] == choice["logprobs"]["text_offset"]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["id"].startswith("cmpl-")


async def test_streaming_max_tokens_zero_echoes_the_prompt_once() -> None:
    async with serve() as client:
        r = await client.post(URL, json=completion(echo=True, max_tokens=0, stream=True))
    texts = [c["choices"][0]["text"] for c in sse_json(r.text)]
    assert "".join(texts) == PROMPT


BAD = [
    ("zero_without_echo", completion(max_tokens=0), "max_tokens"),
    ("negative_max_tokens", completion(max_tokens=-1), "max_tokens"),
    ("agent_mode", completion(search_mode="self"), "search_mode"),
    ("empty_list", completion([]), "prompt"),
    ("empty_string", completion(""), "prompt"),
    ("empty_in_batch", completion(["a", ""]), "prompt[1]"),
    ("missing_prompt", {"model": MODEL}, "prompt"),
    ("prompt_number", completion(5), "prompt"),
    ("negative_token", completion([1, -2]), "prompt"),
    ("logprobs_too_many", completion(logprobs=21), "logprobs"),
    ("n_over_limit", completion(n=9), "n"),
    ("too_long", completion("word " * 2100), "prompt"),
    ("max_tokens_over_context", completion("hi", max_tokens=5000), "max_tokens"),
    (
        "bad_schema",
        completion(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
        "response_format.json_schema",
    ),
]


@pytest.mark.parametrize(("body", "param"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_completion_requests_are_400(body: dict[str, Any], param: str) -> None:
    engine = ScriptedEngine()
    async with serve(engine) as client:
        r = await client.post(URL, json=body)
    error = assert_error(r, 400, type_="invalid_request_error")
    assert error["param"] is not None and error["param"].startswith(param), error
    assert engine.calls == []


async def test_unknown_model_is_404() -> None:
    async with serve() as client:
        r = await client.post(URL, json={**completion(), "model": "gpt-4"})
    assert_error(r, 404, param="model", code="model_not_found")
