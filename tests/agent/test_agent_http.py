"""The search switch behind /v1/chat/completions, in-process with a scripted engine."""

from __future__ import annotations

import json

from service.agent.prompts import SEARCH_R1_INSTRUCTION, SELF_SEARCH_INSTRUCTION
from service.engine.scripted import ScriptedEngine, search_then
from tests.conftest import serve
from tests.fakes import FakeBackend
from tests.helpers import ask, sse_payloads

REAL = ["<think> need facts </think>\n<search> capital of France </search>", "<answer> Paris </answer>"]
SELF = "<search> capital of France </search><information> Paris is it </information><answer> Paris </answer>"


async def test_real_mode_returns_answer_trajectory_and_trace() -> None:
    engine = ScriptedEngine(REAL)
    backend = FakeBackend(name="local")
    async with serve(engine, backend) as client:
        r = await client.post("/v1/chat/completions", json=ask(search_mode="real"))
    assert r.status_code == 200, r.text
    body = r.json()
    message = body["choices"][0]["message"]
    assert message["content"] == "Paris"
    assert message["reasoning_content"].startswith(
        "<think> need facts </think>\n<search> capital of France </search>"
    )
    assert "<information>" in message["reasoning_content"]
    trace = body["search_trace"]
    assert trace["mode"] == "real" and trace["end_reason"] == "answer"
    [step] = trace["steps"]
    assert step["source"] == "real" and step["backend"] == "local" and len(step["results"]) == 3
    assert backend.queries == [("capital of France", 3)]
    # the prompt is the Search-R1 instruction around the last user message
    first_prompt = engine.calls[0].prompt
    assert SEARCH_R1_INSTRUCTION.replace("{question}", "What is the capital of France?") in first_prompt
    usage = body["usage"]
    assert usage["prompt_tokens"] == sum(t["prompt_tokens"] for t in trace["turns"])
    assert usage["completion_tokens"] == sum(t["completion_tokens"] for t in trace["turns"])


async def test_the_same_question_in_self_and_real_gives_different_traces() -> None:
    backend = FakeBackend(name="local")
    async with serve(ScriptedEngine(SELF), backend) as client:
        self_body = (await client.post("/v1/chat/completions", json=ask(search_mode="self"))).json()
    assert backend.queries == []
    [step] = self_body["search_trace"]["steps"]
    assert step["source"] == "self" and step["results"] == [] and step["self_information"] == "Paris is it"
    assert self_body["choices"][0]["message"]["content"] == "Paris"


async def test_self_mode_uses_the_self_search_instruction() -> None:
    engine = ScriptedEngine(SELF)
    async with serve(engine) as client:
        await client.post("/v1/chat/completions", json=ask(search_mode="self"))
    assert (
        SELF_SEARCH_INSTRUCTION.replace("{question}", "What is the capital of France?")
        in engine.calls[0].prompt
    )


async def test_server_default_mode_and_per_request_override() -> None:
    engine = ScriptedEngine(REAL)
    backend = FakeBackend(name="local")
    async with serve(engine, backend, search_mode="real") as client:
        r = await client.post("/v1/chat/completions", json=ask())
        assert r.json()["search_trace"]["mode"] == "real"
        off = await client.post("/v1/chat/completions", json=ask(search_mode="off"))
    assert off.json()["search_trace"] is None
    assert "Answer the given question" not in engine.calls[-1].prompt


async def test_search_options_override_top_k_and_turns() -> None:
    engine = ScriptedEngine(["<search> a </search>", "<search> b </search>", "<answer> c </answer>"])
    backend = FakeBackend(name="local")
    async with serve(engine, backend) as client:
        r = await client.post(
            "/v1/chat/completions", json=ask(search_mode="real", search={"top_k": 1, "max_turns": 1})
        )
    assert backend.queries == [("a", 1)]
    assert len(r.json()["search_trace"]["steps"]) == 1


async def test_invalid_mode_backend_and_options_are_400_listing_valid_values() -> None:
    async with serve(ScriptedEngine(REAL)) as client:
        bad_mode = await client.post("/v1/chat/completions", json=ask(search_mode="google"))
        bad_backend = await client.post(
            "/v1/chat/completions", json=ask(search_mode="real", search={"backend": "bing"})
        )
        typo = await client.post("/v1/chat/completions", json=ask(search_mode="real", search={"topk": 2}))
        too_many = await client.post("/v1/chat/completions", json=ask(search_mode="self", n=9))
    assert bad_mode.status_code == 400
    assert bad_mode.json()["error"]["param"] == "search_mode"
    for mode in ("self", "real", "entropy", "off"):
        assert mode in bad_mode.json()["error"]["message"]
    assert bad_backend.status_code == 400
    assert bad_backend.json()["error"]["param"] == "search.backend"
    assert "local" in bad_backend.json()["error"]["message"]
    assert typo.status_code == 400 and typo.json()["error"]["param"] == "search.topk"
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "n"
    assert "at most 8" in too_many.json()["error"]["message"]  # the server's max_n


async def test_streaming_emits_reasoning_steps_answer_usage_and_done() -> None:
    async with serve(ScriptedEngine(REAL)) as client:
        r = await client.post(
            "/v1/chat/completions",
            json=ask(search_mode="real", stream=True, stream_options={"include_usage": True}),
        )
    events = sse_payloads(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"])
    steps = [c["search_step"] for c in chunks if "search_step" in c]
    finals = [c for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")]
    assert [s["query"] for s in steps] == ["capital of France"] and steps[0]["source"] == "real"
    [final] = finals
    assert final["choices"][0]["delta"]["content"] == "Paris"
    assert final["search_trace"]["steps"][0]["query"] == "capital of France"
    assert reasoning.endswith("<answer> Paris </answer>") and "<information>" in reasoning
    # a step arrives before the text that follows it
    step_at = next(i for i, c in enumerate(chunks) if "search_step" in c)
    info_at = next(
        i
        for i, c in enumerate(chunks)
        if "<information>" in c["choices"][0]["delta"].get("reasoning_content", "")
        if c["choices"]
    )
    assert step_at < info_at
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_failing_backend_never_fails_the_request() -> None:
    engine = ScriptedEngine(
        ["<search> capital </search>", "<information> mine </information><answer> P </answer>"]
    )
    async with serve(engine, FakeBackend(name="local", fail="rate_limited")) as client:
        r = await client.post("/v1/chat/completions", json=ask(search_mode="real"))
    assert r.status_code == 200
    step = r.json()["search_trace"]["steps"][0]
    assert step["source"] == "fallback" and step["error"] == "rate_limited"


search_then_answer = search_then("<answer> P </answer>", search="<search> capital </search>")


async def test_failing_backend_with_fallback_error_is_502() -> None:
    engine = ScriptedEngine(search_then_answer)
    async with serve(
        engine, FakeBackend(name="local", fail="timeout"), agent={"fallback": "error"}
    ) as client:
        r = await client.post("/v1/chat/completions", json=ask(search_mode="real"))
        s = await client.post("/v1/chat/completions", json=ask(search_mode="real", stream=True))
    assert r.status_code == 502 and r.json()["error"]["code"] == "search_failed"
    events = sse_payloads(s.text)
    assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "search_failed"


async def test_search_steps_are_counted_in_metrics() -> None:
    async with serve(ScriptedEngine(REAL)) as client:
        await client.post("/v1/chat/completions", json=ask(search_mode="real"))
        text = (await client.get("/metrics")).text
    assert 'ssrl_search_steps_total{mode="real",source="real"} 1.0' in text


async def test_the_embedded_ssrl_model_searches_by_default_and_a_plain_model_chats() -> None:
    """With no search_mode in the request and none set on the server, an SSRL model (the embedded
    default) runs the real-search loop with its own observation format; the plain base model chats."""
    from service.settings import EMBEDDED_MODEL_NAME

    engine = ScriptedEngine(search_then("<answer> Paris </answer>", plain="Hello."))
    async with serve(engine, model=None) as client:
        r = await client.post("/v1/chat/completions", json={**ask(), "model": EMBEDDED_MODEL_NAME})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model"] == "ssrl-smollm2-135m"
        assert body["search_trace"]["mode"] == "real" and body["search_trace"]["steps"][0]["source"] == "real"
        assert body["choices"][0]["message"]["content"] == "Paris"
        trajectory = body["choices"][0]["message"]["reasoning_content"]
        assert (
            "</search>\n\n<information>\nDoc 1: Paris Paris is the capital" in trajectory
        )  # preset ssrl-smollm2
    async with serve(ScriptedEngine(search_then("<answer> Paris </answer>", plain="Hello."))) as client:
        r = await client.post("/v1/chat/completions", json=ask())
        assert r.status_code == 200 and r.json().get("search_trace") is None
        assert r.json()["choices"][0]["message"]["content"] == "Hello."
