"""The SDK against the real app in-process (scripted engine), sync and async."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.engine.model_files import BASE_MODEL
from service.engine.scripted import ScriptedEngine, search_then
from service.settings import Settings
from ssrl_client import (
    AnswerDelta,
    AsyncClient,
    BadRequestError,
    ChatResult,
    Client,
    Done,
    NotFoundError,
    ReasoningDelta,
    SearchStepEvent,
    ServerError,
)
from tests.conftest import build_app, running

script = search_then(
    "<answer> Paris </answer>",
    search="<think> hmm </think><search> capital of France </search>",
    plain="Hello there.",
)


def make_app(engine: ScriptedEngine | None = None, **settings: Any):
    return build_app(
        Settings(model=BASE_MODEL, api_keys=["sdk-key"], **settings), engine=engine or ScriptedEngine(script)
    )


@pytest.fixture(params=["sync", "async"])
async def call(request) -> AsyncIterator[Callable[..., Any]]:
    """``await call(method, *args, **kwargs)`` runs the method on a sync or an async client."""
    app = make_app()
    if request.param == "sync":
        with (
            TestClient(app) as http,
            Client(base_url="http://testserver/v1", api_key="sdk-key", http_client=http) as c,
        ):

            async def run(method: str, *args: Any, **kwargs: Any) -> Any:
                return getattr(c, method)(*args, **kwargs)

            yield run
    else:
        async with running(app) as http:
            c = AsyncClient(base_url="http://testserver", api_key="sdk-key", http_client=http)

            async def run(method: str, *args: Any, **kwargs: Any) -> Any:
                return await getattr(c, method)(*args, **kwargs)

            yield run


async def test_ask_real_returns_a_typed_result(call) -> None:
    result = await call("ask", "What is the capital of France?", search_mode="real", backend="local", top_k=2)
    assert isinstance(result, ChatResult)
    assert result.answer == "Paris" and result.finish_reason == "stop"
    assert "<information>" in result.trajectory
    [step] = result.steps
    assert (step.query, step.source, step.backend, len(step.results)) == (
        "capital of France",
        "real",
        "local",
        2,
    )
    assert result.trace.end_reason == result.end_reason == "answer"  # at the top, beside answer
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.request_id == result.id and result.model == "smollm2-135m-instruct"


async def test_plain_chat_and_model_discovery(call) -> None:
    assert await call("models") == ["smollm2-135m-instruct"]
    result = await call("chat", [{"role": "user", "content": "Hi"}], search_mode="off", max_tokens=10)
    assert result.answer == "Hello there." and result.trace is None and result.trajectory is None
    assert result.end_reason is None and result.stop_reason is None  # no loop in plain chat


async def test_a_repetition_stop_is_at_the_top_of_the_result() -> None:
    """The end reason beside answer and finish_reason, whole and streamed; vLLM's stop reason in off."""
    engine = ScriptedEngine("<think> well" + " and so on" * 100)
    async with running(make_app(engine)) as http:
        client = AsyncClient(base_url="http://testserver", api_key="sdk-key", http_client=http)
        result = await client.ask("q", search_mode="self")
        async with await client.ask("q", search_mode="real", stream=True) as stream:
            done = [e async for e in stream][-1]
        plain = await client.ask("q", search_mode="off")
    assert (result.answer, result.finish_reason, result.end_reason) == (None, "length", "repetition")
    assert isinstance(done, Done) and (done.finish_reason, done.end_reason) == ("length", "repetition")
    assert (plain.finish_reason, plain.stop_reason, plain.end_reason) == (
        "length",
        "repetition_detected",
        None,
    )


async def test_errors_are_typed(call) -> None:
    with pytest.raises(BadRequestError) as bad:
        await call("ask", "q", search_mode="google")
    assert bad.value.status_code == 400 and bad.value.param == "search_mode"
    with pytest.raises(NotFoundError):
        await call("chat", [{"role": "user", "content": "Hi"}], model="nope")


def test_sync_stream_yields_typed_events_and_closes() -> None:
    with (
        TestClient(make_app()) as http,
        Client(base_url="http://testserver", api_key="sdk-key", http_client=http) as c,
    ):
        with c.ask("What is the capital of France?", search_mode="real", stream=True) as stream:
            events = list(stream)
        assert stream.response.is_closed
    check_events(events)


async def test_async_stream_yields_typed_events_and_closes() -> None:
    app = make_app()
    async with running(app) as http:
        client = AsyncClient(base_url="http://testserver", api_key="sdk-key", http_client=http)
        async with await client.ask(
            "What is the capital of France?", search_mode="real", stream=True
        ) as stream:
            events = [e async for e in stream]
        assert stream.response.is_closed
    check_events(events)


def check_events(events: list) -> None:
    kinds = [type(e) for e in events]
    assert kinds[0] is ReasoningDelta and kinds[-1] is Done
    assert kinds.index(SearchStepEvent) < kinds.index(AnswerDelta)
    trajectory = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert "<search> capital of France </search>" in trajectory and "<information>" in trajectory
    assert "".join(e.text for e in events if isinstance(e, AnswerDelta)) == "Paris"
    done = events[-1]
    assert done.finish_reason == "stop" and done.trace.steps[0].source == "real"
    assert done.end_reason == "answer" and done.stop_reason is None
    assert done.usage is not None and done.usage.completion_tokens > 0


def test_error_frame_mid_stream_raises_after_the_events_before_it() -> None:
    engine = ScriptedEngine("one two three four five", fail_after_tokens=2)
    with (
        TestClient(make_app(engine)) as http,
        Client(base_url="http://testserver", api_key="sdk-key", http_client=http) as c,
    ):
        received = []
        with (
            pytest.raises(ServerError) as caught,
            c.chat([{"role": "user", "content": "Hi"}], stream=True) as stream,
        ):
            for event in stream:
                received.append(event)
    assert caught.value.code == "engine_error"
    assert [e.text for e in received if isinstance(e, AnswerDelta)] == ["one", " two"]


def test_stream_error_frame_parsing_is_strict_json() -> None:
    frame = {
        "error": {
            "message": "search backend failed",
            "type": "server_error",
            "param": None,
            "code": "search_failed",
        }
    }
    body = f"data: {json.dumps(frame)}\n\ndata: [DONE]\n\n".encode()
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, content=body, headers={"x-request-id": "r-1"})
    )
    c = Client(base_url="http://s", http_client=httpx.Client(transport=transport), model="m")
    with (
        pytest.raises(ServerError) as caught,
        c.chat([{"role": "user", "content": "q"}], stream=True) as stream,
    ):
        list(stream)
    assert (caught.value.status_code, caught.value.code, caught.value.request_id) == (
        502,
        "search_failed",
        "r-1",
    )


async def test_ask_with_a_search_function_runs_the_client_loop(call) -> None:
    queries: list[str] = []

    def my_search(query: str) -> list[dict[str, str]]:
        queries.append(query)
        return [{"title": "Paris", "text": "Paris is the capital of France.", "url": "https://x/Paris"}]

    result = await call("ask", "What is the capital of France?", search=my_search, top_k=2)
    assert queries == ["capital of France"]
    assert result.answer == "Paris" and result.finish_reason == "stop"
    [step] = result.steps
    assert (step.source, step.query, step.results[0].text) == (
        "client",
        "capital of France",
        "Paris is the capital of France.",
    )


async def test_async_client_awaits_an_async_search_function() -> None:
    async def my_search(query: str) -> str:
        return f"Nothing about {query}."

    async with running(make_app()) as http:
        c = AsyncClient(base_url="http://testserver", api_key="sdk-key", http_client=http)
        result = await c.chat([{"role": "user", "content": "capital of France?"}], search=my_search)
        with pytest.raises(TypeError):
            await c.ask("q", search=my_search, stream=True)
    assert result.answer == "Paris" and result.steps[0].results[0].text == "Nothing about capital of France."


async def test_n_choices_each_with_its_trajectory_trace_and_spans(call) -> None:
    result = await call("ask", "What is the capital of France?", search_mode="real", n=3, temperature=0.5)
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert result.answer == result.choices[0].answer and result.trace == result.choices[0].trace
    for choice in result.choices:
        assert choice.answer == "Paris" and choice.trace is not None and choice.trace.mode == "real"
        [step] = choice.steps
        assert step.search_span is not None and step.information_span is not None
        block = choice.trajectory[step.information_span.start : step.information_span.end]
        assert block.startswith("<information>") and block.endswith("</information>")
        assert step.results[0].text.split()[0] in block  # the injected results, located


async def test_a_stream_of_n_choices_tells_its_events_apart() -> None:
    async with running(make_app()) as http:
        client = AsyncClient(base_url="http://testserver", api_key="sdk-key", http_client=http)
        async with await client.ask(
            "What is the capital of France?", search_mode="real", n=2, stream=True
        ) as stream:
            events = [e async for e in stream]
    for index in (0, 1):
        answer = "".join(e.text for e in events if isinstance(e, AnswerDelta) and e.index == index)
        assert answer == "Paris"
        assert [e.step.query for e in events if isinstance(e, SearchStepEvent) and e.index == index] == [
            "capital of France"
        ]
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reasons == {0: "stop", 1: "stop"}
    assert set(done.traces) == {0, 1} and done.trace == done.traces[0]
