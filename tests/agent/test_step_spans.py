"""Each step carries where its <search> and <information> blocks lie in the reasoning text (the
trajectory as streamed and returned), as character offsets: streamed steps and the trace alike."""

from __future__ import annotations

import json

from service.agent.loop import AgentLoop, LoopConfig, LoopResult, StepEvent, TextDelta
from service.agent.prompts import PRESETS
from service.engine.scripted import ScriptedEngine, search_then
from service.protocol import SearchStep, TextSpan
from tests.conftest import serve
from tests.fakes import FakeBackend
from tests.helpers import ask, sse_json

URL = "/v1/chat/completions"
PROMPT = "<|user|>\nQuestion: What is the capital of France?\n<|assistant|>\n"


def config(mode: str, **overrides: object) -> LoopConfig:
    base: dict[str, object] = dict(
        mode=mode, budget=500, context_room=2000, observation=PRESETS["qwen2.5-7b"], backend_name="fake"
    )
    return LoopConfig(**{**base, **overrides})  # type: ignore[arg-type]


async def run(engine: ScriptedEngine, cfg: LoopConfig, backend: FakeBackend | None = None, prefill: str = ""):
    loop = AgentLoop(engine, cfg, backend, "req")
    events = [e async for e in loop.run(engine.encode(PROMPT), prefill)]
    result = events[-1]
    assert isinstance(result, LoopResult)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == result.trajectory
    return events, result


def cut(text: str, span: TextSpan | None) -> str:
    assert span is not None
    return text[span.start : span.end]


async def test_a_real_step_streams_both_spans_before_its_results() -> None:
    engine = ScriptedEngine(
        [
            "<think> Ünïcode 😀 first </think>\n<search> capital of France </search>",
            "<answer> Paris </answer>",
        ]
    )
    events, result = await run(engine, config("real", top_k=2), FakeBackend())
    [streamed] = [e.step for e in events if isinstance(e, StepEvent)]
    at = events.index(next(e for e in events if isinstance(e, StepEvent)))
    before = "".join(e.text for e in events[:at] if isinstance(e, TextDelta))
    text = result.trajectory
    assert cut(text, streamed.search_span) == "<search> capital of France </search>"
    assert streamed.search_span is not None and streamed.search_span.end == len(before)
    block = cut(text, streamed.information_span)
    assert block.startswith("<information>\n- Paris is the capital") and block.endswith("</information>")
    assert streamed.information_span is not None
    assert streamed.information_span.start > len(before)  # text yet to come
    assert result.trace.steps == [streamed]


async def test_a_self_step_gets_its_information_span_once_the_model_has_written_it() -> None:
    engine = ScriptedEngine(
        [
            "<search> one </search>",
            "<search> two </search>",
            "\n<information> written by me </information>\n<answer> x </answer>",
        ]
    )
    backend = FakeBackend()
    events, result = await run(engine, config("entropy", max_turns=5), backend)
    streamed = [e.step for e in events if isinstance(e, StepEvent)]
    assert [s.source for s in streamed] == ["real", "self"]
    assert streamed[1].information_span is None  # the model had not written it yet
    text = result.trajectory
    first, second = result.trace.steps
    assert cut(text, first.search_span) == "<search> one </search>"
    assert cut(text, first.information_span).startswith("<information>\n- Paris")
    assert cut(text, second.search_span) == "<search> two </search>"
    assert cut(text, second.information_span) == "<information> written by me </information>"
    assert second.self_information == "written by me"


async def test_a_fallback_step_points_at_the_models_own_block() -> None:
    engine = ScriptedEngine(["<search> q </search>", "<information>mine</information><answer> a </answer>"])
    _, result = await run(engine, config("real"), FakeBackend(fail="timeout"))
    [step] = result.trace.steps
    assert step.source == "fallback"
    assert cut(result.trajectory, step.information_span) == "<information>mine</information>"


async def test_self_mode_spans_cover_a_prefill() -> None:
    prefill = "<think> ok </think> <search> capital </search>"
    engine = ScriptedEngine(" <information>x</information><search> again </search><answer> P </answer>")
    _, result = await run(engine, config("self"), None, prefill=prefill)
    first, second = result.trace.steps
    text = result.trajectory
    assert cut(text, first.search_span) == "<search> capital </search>"
    assert cut(text, first.information_span) == "<information>x</information>"
    assert cut(text, second.search_span) == "<search> again </search>" and second.information_span is None


async def test_client_mode_counts_from_this_requests_text() -> None:
    """A continuation's reasoning is its own text only: the searches of earlier requests have no span."""
    script = search_then(
        "<search> Paris population </search>", search="<think> a </think> <search> capital </search>"
    )
    async with serve(ScriptedEngine(script)) as client:
        first = (await client.post(URL, json=ask(search_mode="client"))).json()
        message = first["choices"][0]["message"]
        messages = [
            {"role": "user", "content": "What is the capital of France?"},
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "Paris."},
        ]
        second = (await client.post(URL, json={**ask(search_mode="client"), "messages": messages})).json()
    [step] = [SearchStep.model_validate(s) for s in first["search_trace"]["steps"]]
    assert cut(message["reasoning_content"], step.search_span) == "<search> capital </search>"
    assert step.information_span is None  # the caller runs this search
    earlier, now = [SearchStep.model_validate(s) for s in second["search_trace"]["steps"]]
    assert earlier.search_span is None and earlier.information_span is None
    reasoning = second["choices"][0]["message"]["reasoning_content"]
    assert cut(reasoning, now.search_span) == "<search> Paris population </search>"


async def test_spans_index_the_streamed_reasoning() -> None:
    engine = ScriptedEngine(["<search> capital of France </search>", "<answer> Paris </answer>"])
    async with serve(engine) as client:
        r = await client.post(URL, json=ask(search_mode="real", stream=True))
    chunks = sse_json(r.text)
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in chunks if c["choices"])
    [step] = [c["search_step"] for c in chunks if "search_step" in c]
    search, information = step["search_span"], step["information_span"]
    assert reasoning[search["start"] : search["end"]] == "<search> capital of France </search>"
    assert reasoning[information["start"] : information["end"]].startswith("<information>")
    [final] = [c for c in chunks if c.get("search_trace")]
    assert json.dumps(final["search_trace"]["steps"][0]) == json.dumps(step)
