"""The real vLLM engine on the embedded model, called with the official openai package."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.e2e.conftest import MODEL
from tests.e2e.launcher import RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
STORY = [{"role": "user", "content": "Write a long story about a dragon who learns to paint."}]


def greedy(client: openai.OpenAI, messages=QUESTION, **kwargs):
    kwargs.setdefault("max_tokens", 32)
    return client.chat.completions.create(model=MODEL, messages=messages, temperature=0, **kwargs)


def test_chat_answers_from_the_model(client: openai.OpenAI) -> None:
    reply = greedy(client)
    choice = reply.choices[0]
    assert reply.model == MODEL
    assert choice.message.role == "assistant"
    assert "Paris" in choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    usage = reply.usage
    assert 0 < usage.completion_tokens <= 32
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_greedy_is_deterministic_and_length_is_reported(client: openai.OpenAI) -> None:
    first = greedy(client, STORY, max_tokens=12)
    second = greedy(client, STORY, max_tokens=12)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].finish_reason == "length"
    assert first.usage.completion_tokens == 12


def test_streaming_matches_non_streaming(client: openai.OpenAI) -> None:
    whole = greedy(client, max_tokens=24).choices[0].message.content
    stream = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        temperature=0,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            deltas.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(deltas) == whole
    assert finish in {"stop", "length"}
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stop_string_cuts_the_text(client: openai.OpenAI) -> None:
    full = greedy(client, STORY, max_tokens=40).choices[0].message.content
    words = full.split()
    stop = next(w for w in words[4:] if len(w) > 3 and full.index(w) > 10)
    cut = greedy(client, STORY, max_tokens=40, stop=[stop]).choices[0]
    assert cut.message.content == full[: full.index(stop)]
    assert cut.finish_reason == "stop"


def test_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        reply = client.chat.completions.create(
            model=MODEL, messages=STORY, temperature=1.0, top_p=1.0, max_tokens=24, seed=seed
        )
        return reply.choices[0].message.content

    assert sample(1234) == sample(1234)
    assert len({sample(1234), sample(99), sample(2024)}) > 1


def test_n_choices_with_sampling(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=STORY, temperature=1.0, max_tokens=16, n=2, seed=7
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].message.content != reply.choices[1].message.content
    assert reply.usage.completion_tokens == 32


def test_logprobs(client: openai.OpenAI) -> None:
    reply = greedy(client, max_tokens=10, logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        # greedy decoding picks the most likely token
        assert entry.top_logprobs[0].token == entry.token
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-4)
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob >= entry.top_logprobs[2].logprob
    text = reply.choices[0].message.content
    joined = "".join(e.token for e in content)
    # the end-of-sequence token is generated (and counted) but not part of the text
    assert joined == text or (joined.startswith(text) and joined[len(text) :] == content[-1].token)


def test_prefix_cache_serves_a_repeated_prompt(client: openai.OpenAI) -> None:
    long_context = " ".join(
        f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(60)
    )
    messages = [{"role": "system", "content": long_context}, {"role": "user", "content": "Is 7 odd?"}]
    greedy(client, messages, max_tokens=4)
    again = greedy(client, messages, max_tokens=4)
    assert again.usage.prompt_tokens > 256
    assert again.usage.prompt_tokens_details.cached_tokens >= 128


def test_models_and_ops_endpoints(client: openai.OpenAI, server: RunningServer) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    assert httpx.get(f"{server.base_url}/health").json()["status"] == "ok"
    version = httpx.get(f"{server.base_url}/version").json()
    assert version["vllm"] and version["model"] == MODEL
    assert server.metric('ssrl_tokens_total{kind="completion"}') > 0


def test_error_cases(client: openai.OpenAI, server: RunningServer) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
    assert not_found.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=5000)
    assert too_long.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError) as bad_type:
        client.chat.completions.create(model=MODEL, messages=QUESTION, extra_body={"temperature": "hot"})
    assert bad_type.value.body["param"] == "temperature"
    wrong_key = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong_key.chat.completions.create(model=MODEL, messages=QUESTION)
    raw = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"


def _wait_engine_idle(server: RunningServer, seconds: float = 10) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.metric("ssrl_engine_unfinished_requests") == 0:
            return True
        time.sleep(0.1)
    return False


def test_client_disconnect_mid_stream_aborts_generation(server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = {"model": MODEL, "messages": STORY, "max_tokens": 1500, "temperature": 0, "stream": True}
    with httpx.stream(
        "POST", f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as r:
        lines = r.iter_lines()
        received = [next(lines) for _ in range(6)]
        assert any(line.startswith("data: ") for line in received)
        assert server.metric("ssrl_engine_unfinished_requests") == 1
    # 1,500 tokens take ~20 s here; an abort frees the engine at once.
    assert _wait_engine_idle(server, 5), "generation kept running after the client left"
    assert server.metric("ssrl_requests_in_flight") == 0


def test_client_disconnect_while_waiting_aborts_generation(server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    body = {"model": MODEL, "messages": STORY, "max_tokens": 1500, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=1.5)
    assert _wait_engine_idle(server, 5), "generation kept running after the client left"
