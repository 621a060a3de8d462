"""``n`` > 1 in every agent mode on the real vLLM engine and the embedded model: n sampled
trajectories from one request, each with its own searches and trace, the prompt shared through the
prefix cache, streamed with each choice's index. Shapes and sums only: what the model writes is its
own (the installed adapter may change)."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest

from tests.e2e.conftest import MODEL
from tests.e2e.launcher import BLOCK, RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

QUESTIONS = ["Where is Mount Kilimanjaro?", "Who wrote Hamlet?"]
N = 3


def messages(question: str) -> list[dict[str, str]]:
    # a system message no earlier request sent: the prompt is not in the prefix cache before this
    # request, so what choices find cached there, they share with each other
    return [
        {"role": "system", "content": f"Session {uuid.uuid4().hex}."},
        {"role": "user", "content": question},
    ]


@pytest.mark.parametrize("mode", ["self", "real", "entropy"])
def test_n_trajectories_in_one_request(client: openai.OpenAI, mode: str) -> None:
    distinct = []
    for question in QUESTIONS:
        # n trajectories on 2 shared cores: more than the shared client's 120 s when other jobs run
        reply = client.with_options(timeout=600).chat.completions.create(
            model=MODEL,
            messages=messages(question),  # type: ignore[arg-type]
            n=N,
            temperature=0.8,
            seed=27,
            max_tokens=256,
            extra_body={"search_mode": mode},
        )
        assert [c.index for c in reply.choices] == list(range(N))
        traces = [c.model_extra["search_trace"] for c in reply.choices]
        assert reply.model_extra["search_trace"] == traces[0]
        turns = [t for trace in traces for t in trace["turns"]]
        for choice, trace in zip(reply.choices, traces, strict=True):
            assert trace["mode"] == mode and trace["turns"]
            assert choice.finish_reason in ("stop", "length")
            text = choice.message.model_extra["reasoning_content"]
            for step in trace["steps"]:  # each choice's spans point into its own text
                if step["search_span"] is not None:
                    span = step["search_span"]
                    assert text[span["start"] : span["end"]].startswith("<search>")
                if mode == "self":
                    assert step["source"] == "self"
        distinct.append(len({c.message.model_extra["reasoning_content"] for c in reply.choices}))
        usage = reply.usage
        assert usage.prompt_tokens == sum(t["prompt_tokens"] for t in turns)
        assert usage.completion_tokens == sum(t["completion_tokens"] for t in turns)
        assert usage.prompt_tokens_details.cached_tokens == sum(t["cached_tokens"] for t in turns)
        # the prompt was prefilled once: the other choices found its whole blocks in the cache
        first = sorted(trace["turns"][0]["cached_tokens"] for trace in traces)
        prompt = traces[0]["turns"][0]["prompt_tokens"]
        assert all(cached >= prompt - 2 * BLOCK for cached in first[1:]), (first, prompt)
    # sampled at temperature 0.8, each choice with its own seed: not n copies of one trajectory
    assert max(distinct) > 1, distinct


def test_n_choices_stream_interleaved_with_their_index(server: RunningServer) -> None:
    body = {
        "model": MODEL,
        "messages": messages(QUESTIONS[0]),
        "n": N,
        "temperature": 0.8,
        "seed": 5,
        "max_tokens": 200,
        "search_mode": "real",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.stream(
        "POST", f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=600
    ) as r:
        assert r.status_code == 200
        payloads = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    first, *rest, usage_chunk = [json.loads(p) for p in payloads[:-1]]
    assert [c["index"] for c in first["choices"]] == list(range(N))
    assert all(len(c["choices"]) == 1 for c in rest)
    order = [c["choices"][0]["index"] for c in rest]
    assert order != sorted(order)  # the choices ran side by side
    for i in range(N):
        mine = [c for c in rest if c["choices"][0]["index"] == i]
        finishes = [c for c in mine if c["choices"][0]["finish_reason"] is not None]
        assert len(finishes) == 1 and finishes[0] is mine[-1]
        trace = finishes[0]["search_trace"]
        assert trace["mode"] == "real"
        streamed_steps = [c["search_step"]["query"] for c in mine if "search_step" in c]
        assert streamed_steps == [s["query"] for s in trace["steps"]]
    turns = [t for c in rest if "search_trace" in c for t in c["search_trace"]["turns"]]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == sum(t["completion_tokens"] for t in turns)
    assert usage_chunk["usage"]["prompt_tokens"] == sum(t["prompt_tokens"] for t in turns)
