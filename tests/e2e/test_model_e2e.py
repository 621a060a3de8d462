"""The embedded SSRL model speaks the protocol by itself: no prefill anywhere in this module.

The questions are phrased by hand about articles of the held-out test split of ``ssrl-train``
(never seen in training, in any phrasing). Decoding is greedy, so the trajectories are repeatable;
the assertions still leave room for one miss per group, as the model is small.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from evals.scoring import exact_match
from service.agent.tags import last_answer
from tests.e2e.conftest import MODEL
from tests.e2e.launcher import RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

QUESTIONS = [
    ("Which country has Baku as its capital?", ("Azerbaijan",)),
    ("What nationality was the painter Gustave Courbet?", ("French",)),
    ("What was Antonio Vivaldi's profession?", ("composer",)),
    ("Igor Stravinsky came from which country? Give his nationality.", ("Russian",)),
    ("what's the atomic number of nickel", ("28",)),
]


def ask(client: openai.OpenAI, question: str, mode: str) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": question}],
        max_tokens=700,
        extra_body={"search_mode": mode},
    )


@pytest.fixture(scope="module")
def runs(server: RunningServer) -> dict[str, list[openai.types.chat.ChatCompletion]]:
    client = openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120
    )
    modes = ("real", "self", "entropy")
    with ThreadPoolExecutor(len(QUESTIONS) * len(modes)) as pool:  # one batch: a third of the time
        futures = {mode: [pool.submit(ask, client, q, mode) for q, _ in QUESTIONS] for mode in modes}
        return {mode: [f.result() for f in replies] for mode, replies in futures.items()}


def trace(reply: openai.types.chat.ChatCompletion) -> dict:
    return reply.model_extra["search_trace"]


def test_real_mode_the_model_searches_the_local_index_then_answers(runs: dict, server: RunningServer) -> None:
    good = 0
    correct = 0
    for reply, (_, golds) in zip(runs["real"], QUESTIONS, strict=True):
        steps = trace(reply)["steps"]
        trajectory = reply.choices[0].message.model_extra["reasoning_content"]
        if not steps or trace(reply)["end_reason"] != "answer":
            continue
        first = steps[0]
        assert (first["source"], first["backend"]) == ("real", "local")
        assert first["query"] and "\n" not in first["query"]
        assert first["results"] and all(
            r["url"].startswith("https://en.wikipedia.org/") for r in first["results"]
        )
        # the model wrote the search, the loop injected the index's results, the model answered after them
        assert (
            trajectory.index("<search>") < trajectory.index("<information>") < trajectory.rindex("<answer>")
        )
        assert reply.choices[0].message.content == last_answer(trajectory)
        assert reply.choices[0].finish_reason == "stop"
        good += 1
        correct += exact_match(reply.choices[0].message.content, golds) == 1.0
    assert good >= len(QUESTIONS) - 1
    assert correct >= len(QUESTIONS) // 2, [r.choices[0].message.content for r in runs["real"]]


def test_self_mode_the_model_writes_its_own_information(runs: dict) -> None:
    good = 0
    for reply in runs["self"]:
        t = trace(reply)
        assert len(t["turns"]) == 1  # one uninterrupted generation
        if t["end_reason"] != "answer" or not t["steps"]:
            continue
        step = t["steps"][0]
        assert step["source"] == "self" and step["results"] == []
        assert step["self_information"] and len(step["self_information"]) > 20
        assert reply.choices[0].message.content
        good += 1
    assert good >= len(QUESTIONS) - 1


def test_entropy_mode_sends_the_first_search_to_the_backend(runs: dict) -> None:
    searched = [trace(r) for r in runs["entropy"] if trace(r)["steps"]]
    assert len(searched) >= len(QUESTIONS) - 1
    for t in searched:
        assert t["steps"][0]["source"] == "real" and t["steps"][0]["backend"] == "local"
    assert sum(t["end_reason"] == "answer" for t in searched) >= len(QUESTIONS) - 1


def test_streaming_a_model_driven_search(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTIONS[0][0]}],
        max_tokens=700,
        stream=True,
        extra_body={"search_mode": "real"},
    )
    reasoning, answer, steps = "", "", []
    for chunk in stream:
        extra = chunk.model_extra or {}
        if extra.get("search_step"):
            steps.append(extra["search_step"])
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            answer += delta.content or ""
    assert steps and steps[0]["source"] == "real"
    assert "<search>" in reasoning and "<information>" in reasoning
    assert answer.strip() == (last_answer(reasoning) or "").strip() and answer.strip()
