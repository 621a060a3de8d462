"""A drop-in for vLLM's OpenAI server, on the real engine and the embedded model, called with the
official openai package: JSON mode and JSON schema through vLLM's structured outputs, tools other
than search refused, message validation, reasoning under both names, /v1/completions in the shape
of vLLM's own response models (lm-eval's loglikelihood request included), max_model_len."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.e2e.conftest import MODEL
from tests.e2e.launcher import RunningServer
from tests.helpers import sse_json

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

CITY = [{"role": "user", "content": "Give the capital of France and its population as JSON."}]
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "population": {"type": "integer"},
        "is_capital": {"type": "boolean"},
    },
    "required": ["city", "population", "is_capital"],
    "additionalProperties": False,
}
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def vllm_models() -> dict[str, type[BaseModel]]:
    """vLLM's own response models for text completions, from the installed package."""
    from vllm.entrypoints.openai.completion.protocol import (
        CompletionLogProbs,
        CompletionResponse,
        CompletionResponseChoice,
        CompletionResponseStreamChoice,
        CompletionStreamResponse,
    )
    from vllm.entrypoints.serve.engine.protocol import ModelCard, UsageInfo

    return {
        "response": CompletionResponse,
        "choice": CompletionResponseChoice,
        "stream": CompletionStreamResponse,
        "stream_choice": CompletionResponseStreamChoice,
        "logprobs": CompletionLogProbs,
        "usage": UsageInfo,
        "model": ModelCard,
    }


def _keys_within(data: dict[str, Any], model: type[BaseModel]) -> None:
    allowed = {f.alias or name for name, f in model.model_fields.items()}
    assert set(data) <= allowed, (model.__name__, set(data) - allowed)


def assert_vllm_shape(
    body: dict[str, Any], models: dict[str, type[BaseModel]], *, stream: bool = False
) -> None:
    """``body`` validates as vLLM's response model, and carries no key vLLM's models lack."""
    top, choice = ("stream", "stream_choice") if stream else ("response", "choice")
    models[top].model_validate(body)
    _keys_within(body, models[top])
    for c in body["choices"]:
        _keys_within(c, models[choice])
        if c.get("logprobs") is not None:
            _keys_within(c["logprobs"], models["logprobs"])
    if body.get("usage") is not None:
        _keys_within(body["usage"], models["usage"])


# -- chat: response_format ---------------------------------------------------------------------
def test_json_object_mode_returns_a_json_object(client: openai.OpenAI) -> None:
    # json_object constrains the syntax, not the keys: asked the open CITY question the 135M model
    # repeats keys until max_tokens (valid JSON so far, never closed), so ask for one key.
    one_key = [{"role": "user", "content": "Reply with a JSON object with one key, capital, for France."}]
    reply = client.chat.completions.create(
        model=MODEL, messages=one_key, response_format={"type": "json_object"}, temperature=0, max_tokens=96
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert isinstance(json.loads(choice.message.content), dict)


def test_json_schema_strict_output_validates_against_the_schema(client: openai.OpenAI) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}
    reply = client.chat.completions.create(
        model=MODEL, messages=CITY, response_format=fmt, temperature=0, max_tokens=96
    )
    assert reply.choices[0].finish_reason == "stop", reply.choices[0].message.content
    jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)
    # the same constraint holds when streamed (and sampled)
    stream = client.chat.completions.create(
        model=MODEL, messages=CITY, response_format=fmt, temperature=1.0, seed=3, max_tokens=96, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), SCHEMA)


def test_without_response_format_the_same_request_misses_the_schema(client: openai.OpenAI) -> None:
    """The constraint is what makes the schema's JSON: unconstrained, the model writes prose or JSON of
    its own keys (round 4 of the embedded adapter writes '{"capital": "Paris"}'), not the schema's."""
    reply = client.chat.completions.create(model=MODEL, messages=CITY, temperature=0, max_tokens=96)
    with pytest.raises((json.JSONDecodeError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)


def test_response_format_in_an_agent_mode_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=CITY,
            response_format={"type": "json_object"},
            max_tokens=16,
            extra_body={"search_mode": "self"},
        )
    assert caught.value.param == "response_format" and "search_mode 'off'" in caught.value.message


def test_an_invalid_schema_is_400(client: openai.OpenAI) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=CITY, response_format=fmt, max_tokens=8)
    assert caught.value.param == "response_format.json_schema.schema"


# -- chat: tools and messages ------------------------------------------------------------------
def test_a_tool_other_than_search_is_400(client: openai.OpenAI) -> None:
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=CITY, tools=[weather], max_tokens=8)
    assert caught.value.param == "tools[0].function.name" and caught.value.code == "unsupported_tool"
    assert "one tool, 'search'" in caught.value.message


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "user", "content": None}], "messages[0].content"),
        (
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": ""},
            ],
            "messages[2].content",
        ),
        ([{"role": "user", "content": "Hi"}, {"role": "oracle", "content": "Hello"}], "messages[1].role"),
    ],
)
def test_bad_messages_are_400_naming_the_message(client: openai.OpenAI, messages: list, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8)
    assert caught.value.param == param


def test_reasoning_under_both_names_out_and_in(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "Who wrote Hamlet?"}]
    reply = client.chat.completions.create(
        model=MODEL, messages=question, temperature=0, max_tokens=48, extra_body={"search_mode": "self"}
    )
    message = reply.choices[0].message.to_dict()
    assert message["reasoning"] and message["reasoning"] == message["reasoning_content"]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=question,
        temperature=0,
        max_tokens=48,
        stream=True,
        extra_body={"search_mode": "self"},
    )
    deltas = [c.choices[0].delta.to_dict() for c in stream if c.choices]
    reasoning = [d for d in deltas if "reasoning" in d or "reasoning_content" in d]
    assert all(d["reasoning"] == d["reasoning_content"] for d in reasoning)
    assert "".join(d["reasoning"] for d in reasoning) == message["reasoning"]
    # a client sends the history back under either name
    for name in ("reasoning", "reasoning_content"):
        history = [*question, {"role": "assistant", "content": "Shakespeare", name: message["reasoning"]}]
        follow_up = client.chat.completions.create(
            model=MODEL, messages=[*history, {"role": "user", "content": "When?"}], max_tokens=4
        )
        assert follow_up.choices[0].message.content is not None


# -- /v1/completions -----------------------------------------------------------------------------
def test_completion_of_a_prompt_in_vllms_shape(
    client: openai.OpenAI, vllm_models: dict[str, type[BaseModel]]
) -> None:
    raw = client.completions.with_raw_response.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    body = raw.http_response.json()
    assert_vllm_shape(body, vllm_models)
    reply = raw.parse()
    assert reply.object == "text_completion" and reply.choices[0].text
    assert reply.usage.prompt_tokens == 5 and 0 < reply.usage.completion_tokens <= 8
    again = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    assert again.choices[0].text == reply.choices[0].text


def test_lm_eval_loglikelihood_request(
    client: openai.OpenAI, vllm_models: dict[str, type[BaseModel]]
) -> None:
    """What lm-eval's local-completions sends to score a continuation: echo, logprobs 1, max_tokens
    0 or 1, temperature 0. The scores are the model's: the greedy next token's logprob comes back
    as the prompt logprob of that token once it is part of the prompt."""
    raw = client.completions.with_raw_response.create(
        model=MODEL, prompt=PROMPT, echo=True, logprobs=1, max_tokens=1, temperature=0, seed=1234
    )
    body = raw.http_response.json()
    assert_vllm_shape(body, vllm_models)
    choice = raw.parse().choices[0]
    lp = choice.logprobs
    assert choice.text.startswith(PROMPT) and len(choice.text) > len(PROMPT)
    assert "".join(lp.tokens) == choice.text and len(lp.tokens) == 6
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(6)]
    next_token, next_logprob = lp.tokens[-1], lp.token_logprobs[-1]
    assert max(lp.top_logprobs[-1].values()) == lp.top_logprobs[-1][next_token]  # greedy
    for token, value, top in zip(lp.tokens[1:], lp.token_logprobs[1:], lp.top_logprobs[1:], strict=True):
        assert top[token] == value and value <= 0 and 1 <= len(top) <= 2

    scored = client.completions.with_raw_response.create(
        model=MODEL, prompt=PROMPT + next_token, echo=True, logprobs=1, max_tokens=0, temperature=0
    )
    assert_vllm_shape(scored.http_response.json(), vllm_models)
    s = scored.parse().choices[0]
    assert s.text == PROMPT + next_token and s.logprobs.tokens == lp.tokens
    assert s.logprobs.token_logprobs[-1] == pytest.approx(next_logprob, abs=0.05)
    assert s.logprobs.token_logprobs[1:-1] == pytest.approx(lp.token_logprobs[1:-1], abs=1e-3)
    assert scored.parse().usage.completion_tokens == 0


def test_batch_n_seed_and_stop(client: openai.OpenAI) -> None:
    prompts = [PROMPT, "Once upon a time"]

    def sample() -> list[str]:
        reply = client.completions.create(
            model=MODEL, prompt=prompts, n=2, max_tokens=6, temperature=1.0, seed=99
        )
        assert [c.index for c in reply.choices] == [0, 1, 2, 3]
        assert 4 <= reply.usage.completion_tokens <= 4 * 6
        assert reply.usage.prompt_tokens > 5  # each prompt once: 5 tokens, then the second's
        return [c.text for c in reply.choices]

    first = sample()
    assert first == sample()  # seeded
    whole = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=16, temperature=0)
    text = whole.choices[0].text
    stop = next(w for w in text.split()[2:] if len(w) > 2)
    cut = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=16, temperature=0, stop=[stop]
    )
    assert cut.choices[0].text == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_min_tokens_and_ignore_eos_hold_the_end_off(client: openai.OpenAI) -> None:
    """vLLM's extras as ``vllm bench serve --ignore-eos`` sends them: a greedy answer that ends by
    itself runs on to max_tokens with ignore_eos, and to min_tokens at least with min_tokens."""
    messages = [{"role": "user", "content": "Say hello."}]
    natural = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=200, temperature=0)
    assert natural.choices[0].finish_reason == "stop"
    ended = natural.usage.completion_tokens
    held = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=ended + 40,
        temperature=0,
        extra_body={"ignore_eos": True, "repetition_detection": {"max_pattern_size": 0}},
    )
    assert held.choices[0].finish_reason == "length" and held.usage.completion_tokens == ended + 40
    assert held.choices[0].message.content.startswith(natural.choices[0].message.content)
    at_least = client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=64, temperature=0, extra_body={"min_tokens": 48}
    )
    assert at_least.usage.completion_tokens >= 48


def test_streamed_completion_in_vllms_shape(
    server: RunningServer, client: openai.OpenAI, vllm_models: dict[str, type[BaseModel]]
) -> None:
    request = {
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": 6,
        "temperature": 0,
        "echo": True,
        "logprobs": 1,
    }
    whole = client.completions.create(**request)
    r = httpx.post(
        f"{server.base_url}/v1/completions",
        json={**request, "stream": True, "stream_options": {"include_usage": True}},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=120,
    )
    chunks = sse_json(r.text)
    for chunk in chunks:
        assert_vllm_shape(chunk, vllm_models, stream=True)
    *deltas, last = chunks
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == whole.usage.completion_tokens
    assert "".join(c["choices"][0]["text"] for c in deltas) == whole.choices[0].text
    tokens = [t for c in deltas for t in c["choices"][0]["logprobs"]["tokens"]]
    assert tokens == whole.choices[0].logprobs.tokens
    # and through the openai client's own stream
    texts = [c.choices[0].text for c in client.completions.create(**request, stream=True) if c.choices]
    assert "".join(texts) == whole.choices[0].text


def test_completions_refuse_agent_modes(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=4, extra_body={"search_mode": "real"}
        )
    assert caught.value.param == "search_mode"


def test_models_carry_max_model_len(client: openai.OpenAI, vllm_models: dict[str, type[BaseModel]]) -> None:
    [card] = client.models.list().data
    assert card.id == MODEL
    assert card.to_dict()["max_model_len"] == 2048  # the e2e server's --engine.max-model-len
    vllm_models["model"].model_validate(card.to_dict())
