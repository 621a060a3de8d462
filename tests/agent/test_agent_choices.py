"""``n`` > 1 in the agent modes: n independent trajectories from one request, on the scripted engine."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.agent.runtime import CHOICE_SEED_STRIDE, choice_seed
from service.engine.base import SamplingOptions
from service.engine.scripted import ScriptedEngine, ScriptedReply
from tests.conftest import serve
from tests.fakes import FakeBackend
from tests.helpers import ask, assert_error, assert_error_body, sse_json, sse_payloads

URL = "/v1/chat/completions"
SEED = 5


def _choice(options: SamplingOptions) -> int:
    """Which choice an engine call belongs to, read back from its seed (seed + i * stride + turn)."""
    assert options.seed is not None
    return (options.seed - SEED) // CHOICE_SEED_STRIDE


def by_seed(prompt: str, options: SamplingOptions) -> ScriptedReply | str:
    """Choice i searches for ``q{i}`` and answers ``A{i}``; in self mode it writes all of it at once."""
    i = _choice(options)
    trajectory = prompt.rsplit("<|assistant|>\n", 1)[-1]
    search = f"<think> t{i} </think>\n<search> q{i} </search>"
    answer = f"<answer> A{i} </answer>"
    if "</search>" in trajectory:
        return answer
    if "</search>" not in options.stop:  # self mode: one generation writes it all
        return f"{search}\n<information> I{i} </information>\n{answer}"
    return ScriptedReply(search, [-0.1] * 20)


@pytest.mark.parametrize("mode", ["self", "real", "entropy"])
async def test_n_choices_are_independent_trajectories(mode: str) -> None:
    engine = ScriptedEngine(by_seed)
    backend = FakeBackend(name="local")
    async with serve(engine, backend) as client:
        r = await client.post(URL, json=ask(search_mode=mode, n=3, temperature=0.8, seed=SEED))
    assert r.status_code == 200, r.text
    body = r.json()
    choices = body["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    for i, choice in enumerate(choices):
        assert choice["message"]["content"] == f"A{i}" and choice["finish_reason"] == "stop"
        assert f"<search> q{i} </search>" in choice["message"]["reasoning_content"]
        trace = choice["search_trace"]
        assert trace["mode"] == mode and trace["end_reason"] == "answer"
        [step] = trace["steps"]
        assert step["query"] == f"q{i}"
        assert step["source"] == ("self" if mode == "self" else "real")
        # each answer cites its own trajectory's sources (self-written information never)
        cited = [a["url_citation"]["url"] for a in choice["message"]["annotations"]]
        assert cited == ([] if mode == "self" else ["https://en.wikipedia.org/wiki/Paris"])
        span = step["search_span"]
        assert (
            choice["message"]["reasoning_content"][span["start"] : span["end"]] == f"<search> q{i} </search>"
        )
    assert body["search_trace"] == choices[0]["search_trace"]  # the top-level field: choice 0's
    # each choice samples with its own seed, every turn of it too; distinct engine request ids
    turns = 1 if mode == "self" else 2
    assert sorted(c.options.seed for c in engine.calls) == sorted(
        SEED + i * CHOICE_SEED_STRIDE + t for i in range(3) for t in range(turns)
    )
    assert all(c.options.temperature == 0.8 for c in engine.calls)
    assert len({c.request_id for c in engine.calls}) == 3 * turns
    assert len({tuple(c.prompt_token_ids[:20]) for c in engine.calls}) == 1  # one prompt, shared
    assert sorted(backend.queries) == ([] if mode == "self" else [(f"q{i}", 3) for i in range(3)])
    # usage adds up every choice's turns
    usage = body["usage"]
    all_turns = [t for c in choices for t in c["search_trace"]["turns"]]
    assert usage["prompt_tokens"] == sum(t["prompt_tokens"] for t in all_turns)
    assert usage["completion_tokens"] == sum(t["completion_tokens"] for t in all_turns)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_streamed_choices_interleave_each_with_its_index_finish_and_trace() -> None:
    engine = ScriptedEngine(by_seed)
    async with serve(engine, FakeBackend(name="local")) as client:
        body = ask(search_mode="real", n=3, seed=SEED, stream=True, stream_options={"include_usage": True})
        chunks = sse_json((await client.post(URL, json=body)).text)
        whole = (await client.post(URL, json={**body, "stream": False})).json()
    first, *rest, usage_chunk = chunks
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert all(c["delta"]["role"] == "assistant" for c in first["choices"])
    assert all(len(c["choices"]) == 1 for c in rest)  # one choice per chunk: its step, its trace
    order = [c["choices"][0]["index"] for c in rest]
    assert order != sorted(order)  # interleaved as generated, not one choice after another
    for i in range(3):
        mine = [c for c in rest if c["choices"][0]["index"] == i]
        reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in mine)
        assert reasoning == whole["choices"][i]["message"]["reasoning_content"]
        steps = [c["search_step"] for c in mine if "search_step" in c]
        assert [s["query"] for s in steps] == [f"q{i}"]
        [last] = [c for c in mine if c["choices"][0]["finish_reason"] is not None]
        assert last is mine[-1] and last["choices"][0]["finish_reason"] == "stop"
        assert last["choices"][0]["delta"]["content"] == f"A{i}"
        assert last["search_trace"]["steps"][0]["query"] == f"q{i}"
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole["usage"]


async def test_temperature_zero_gives_n_identical_choices() -> None:
    engine = ScriptedEngine(lambda prompt, options: f"<search> x </search><answer> {options.seed} </answer>")
    async with serve(engine) as client:
        body = (await client.post(URL, json=ask(search_mode="self", n=2))).json()
    # greedy decoding (the agent default) ignores the seed: a real engine gives the same text twice;
    # unseeded, no choice gets a seed at all
    assert [c.options.seed for c in engine.calls] == [None, None]
    assert [c.options.temperature for c in engine.calls] == [0.0, 0.0]
    assert body["choices"][0]["message"] == body["choices"][1]["message"]


def test_choice_seeds_are_derived_from_the_request_seed() -> None:
    assert choice_seed(None, 3) is None
    assert choice_seed(7, 0) == 7  # n=1 keeps the request's seed
    assert choice_seed(7, 2) == 7 + 2 * CHOICE_SEED_STRIDE
    assert choice_seed(2**63 - 1, 1) == (2**63 - 1 + CHOICE_SEED_STRIDE) % 2**63
    # torch's CPU generator keeps a seed's low 32 bits only: every choice's every turn must differ there
    for seed in (0, 5, 2**40 + 7, 2**63 - 3):
        low = {((choice_seed(seed, i) or 0) + turn) % 2**32 for i in range(128) for turn in range(16)}
        assert len(low) == 128 * 16


async def test_n_limits_and_client_mode() -> None:
    async with serve(ScriptedEngine(by_seed), max_n=4) as client:
        over = await client.post(URL, json=ask(search_mode="real", n=5, seed=SEED))
        at = await client.post(URL, json=ask(search_mode="real", n=4, seed=SEED))
        tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
        client_mode = await client.post(URL, json=ask(search_mode="client", n=2, tools=tools))
    assert "at most 4" in assert_error(over, 400, param="n")["message"]
    assert at.status_code == 200 and len(at.json()["choices"]) == 4
    assert "search_mode 'client'" in assert_error(client_mode, 400, param="n")["message"]


async def test_one_failing_choice_fails_the_request_and_stops_the_others() -> None:
    engine = ScriptedEngine(by_seed, token_delay=0.001)
    backend = FakeBackend(name="local", fail="timeout")
    async with serve(engine, backend, agent={"fallback": "error"}) as client:
        whole = await client.post(URL, json=ask(search_mode="real", n=3, seed=SEED))
        stream = sse_payloads(
            (await client.post(URL, json=ask(search_mode="real", n=3, seed=SEED, stream=True))).text
        )
    assert_error(whole, 502)
    assert stream[-1] == "[DONE]"
    error: dict[str, Any] = json.loads(stream[-2])
    assert_error_body(error)
    assert engine.num_unfinished_requests() == 0
