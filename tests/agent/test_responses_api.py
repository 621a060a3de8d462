"""POST /v1/responses on the scripted engine, in-process: the ``openai`` package's
``responses.create`` and ``responses.stream`` against the app, every body and event validated with
its own types; the request's fields, the stateless refusals, errors, limits and keys."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import ResponseFunctionWebSearch, ResponseOutputMessage, ResponseReasoningItem

from service.engine.scripted import ScriptedEngine, search_then
from tests import openai_shapes
from tests.conftest import serve
from tests.fakes import FakeBackend
from tests.helpers import MODEL, ask, assert_error, metric, wait_until

URL = "/v1/responses"
QUESTION = "What is the capital of France?"
PARIS_URL = "https://en.wikipedia.org/wiki/Paris"
ANSWER = "<think> the first result says so </think>\n<answer> Paris </answer>"
WEB_SEARCH = [{"type": "web_search"}]


def body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": QUESTION, "tools": WEB_SEARCH, **extra}


def engine() -> ScriptedEngine:
    return ScriptedEngine(search_then(ANSWER))


def client_of(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key="none", http_client=http, max_retries=0)


async def test_create_returns_reasoning_searches_and_a_cited_message() -> None:
    async with serve(engine(), FakeBackend(name="local")) as http:
        raw = await http.post(URL, json=body())
        response = await client_of(http).responses.create(
            model=MODEL, input=QUESTION, tools=[{"type": "web_search"}]
        )
    assert raw.status_code == 200, raw.text
    parsed = openai_shapes.response(raw.json())
    assert raw.headers["x-request-id"] == parsed.id and parsed.id.startswith("resp_")
    for result in (parsed, response):
        assert (result.status, result.object, result.model) == ("completed", "response", MODEL)
        reasoning, search, message = result.output
        assert isinstance(reasoning, ResponseReasoningItem) and reasoning.status == "completed"
        assert isinstance(search, ResponseFunctionWebSearch) and isinstance(message, ResponseOutputMessage)
        assert search.status == "completed" and search.action.type == "search"
        assert search.action.query == QUESTION
        assert [s.url for s in search.action.sources or []] == [PARIS_URL]  # the results that have a URL
        assert search.model_extra["search_source"] == "real"
        assert result.output_text == "Paris"
        [text] = message.content
        [citation] = text.annotations
        assert (citation.type, citation.url, citation.title) == ("url_citation", PARIS_URL, "Paris")
        assert text.text[citation.start_index : citation.end_index] == "Paris"
        trace = result.model_extra["search_trace"]
        assert reasoning.content and reasoning.content[0].text.endswith("<answer> Paris </answer>")
        assert trace["steps"][0]["query"] == QUESTION and trace["end_reason"] == "answer"
        usage = result.usage
        assert usage and usage.input_tokens == sum(t["prompt_tokens"] for t in trace["turns"])
        assert usage.output_tokens == usage.output_tokens_details.reasoning_tokens > 0
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
        assert result.tools[0].type == "web_search"


async def test_the_same_loop_as_chat_completions() -> None:
    """Same engine path: the same prompt, the same trajectory and the same trace as the chat route."""
    chat_engine, responses_engine = engine(), engine()
    async with serve(chat_engine, FakeBackend(name="local")) as http:
        chat = (await http.post("/v1/chat/completions", json=ask(QUESTION, search_mode="real"))).json()
    async with serve(responses_engine, FakeBackend(name="local")) as http:
        response = (await http.post(URL, json=body())).json()
    assert [c.prompt for c in chat_engine.calls] == [c.prompt for c in responses_engine.calls]
    assert response["output"][0]["content"][0]["text"] == chat["choices"][0]["message"]["reasoning_content"]
    assert response["output"][-1]["content"][0]["text"] == chat["choices"][0]["message"]["content"]
    chat_trace, responses_trace = chat["search_trace"], response["search_trace"]
    for trace in (chat_trace, responses_trace):
        for search in trace["steps"]:
            search.pop("latency_ms")
    assert chat_trace == responses_trace


async def test_stream_events_in_order_validated_and_accumulated_by_openai() -> None:
    async with serve(engine(), FakeBackend(name="local")) as http:
        raw = await http.post(URL, json=body(stream=True))
        async with client_of(http).responses.stream(
            model=MODEL, input=QUESTION, tools=[{"type": "web_search"}]
        ) as stream:
            seen = [event.type async for event in stream]
            final = await stream.get_final_response()
    assert raw.headers["content-type"].startswith("text/event-stream")
    events = openai_shapes.stream_events(raw.text)
    kinds = [e.type for e in events]
    head = [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[:4] == head
    search_events = [
        "response.output_item.added",
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
        "response.output_item.done",
    ]
    start = kinds.index("response.web_search_call.in_progress") - 1
    assert kinds[start : start + 5] == search_events
    tail = [
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.annotation.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert kinds[-len(tail) :] == tail
    assert set(kinds[4:start]) == {"response.reasoning_text.delta"}  # the trajectory up to its search
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")  # type: ignore[attr-defined]
    completed = events[-1].response  # type: ignore[attr-defined]
    assert deltas == completed.output[0].content[0].text
    # items are added and done under the same id, at the index the final output holds them
    added = {e.output_index: e.item.id for e in events if e.type == "response.output_item.added"}  # type: ignore[attr-defined]
    assert added == {i: item.id for i, item in enumerate(completed.output)}
    annotation = next(e for e in events if e.type == "response.output_text.annotation.added")
    assert annotation.annotation.url == PARIS_URL and annotation.annotation_index == 0  # type: ignore[attr-defined]
    # what the openai package's stream helper made of it
    assert seen == kinds and final.output_text == "Paris"
    assert [item.type for item in final.output] == ["reasoning", "web_search_call", "message"]
    assert final.output[-1].content[0].annotations[0].url == PARIS_URL  # type: ignore[union-attr]


async def test_create_with_stream_true_iterates_typed_events() -> None:
    async with serve(engine(), FakeBackend(name="local")) as http:
        stream = await client_of(http).responses.create(
            model=MODEL, input=QUESTION, tools=[{"type": "web_search"}], stream=True
        )
        events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_self_searches_are_marked_and_cite_nothing() -> None:
    written = (
        "<search> capital </search><information> Paris is the capital. </information><answer> Paris </answer>"
    )
    async with serve(ScriptedEngine(written)) as http:
        whole = (await http.post(URL, json=body(search_mode="self"))).json()
        streamed = await http.post(URL, json=body(search_mode="self", stream=True))
    openai_shapes.response(whole)
    search = whole["output"][1]
    assert (search["search_source"], search["status"], search["action"]["sources"]) == (
        "self",
        "completed",
        [],
    )
    assert whole["output"][2]["content"][0]["annotations"] == []
    events = openai_shapes.stream_events(streamed.text)
    # self mode writes its searches in its one generation: their items follow the trajectory's text
    kinds = [e.type for e in events]
    assert kinds.index("response.web_search_call.in_progress") > max(
        i for i, k in enumerate(kinds) if k == "response.reasoning_text.delta"
    )
    assert events[-1].response.output[1].model_extra["search_source"] == "self"  # type: ignore[attr-defined]


async def test_a_failed_search_is_a_failed_call_and_the_model_writes_the_results() -> None:
    async with serve(engine(), FakeBackend(name="local", fail="timeout")) as http:
        whole = (await http.post(URL, json=body())).json()
        streamed = await http.post(URL, json=body(stream=True))
    search = whole["output"][1]
    assert (search["status"], search["search_source"]) == ("failed", "fallback")
    assert whole["output"][2]["content"][0]["annotations"] == []
    kinds = [e.type for e in openai_shapes.stream_events(streamed.text)]
    assert "response.web_search_call.searching" in kinds
    assert "response.web_search_call.completed" not in kinds


async def test_the_mode_comes_from_search_mode_then_the_tool_then_the_server_default() -> None:
    backend = FakeBackend(name="local")
    async with serve(engine(), backend, search_mode="self") as http:
        tool = (await http.post(URL, json=body())).json()
        default = (await http.post(URL, json=body(tools=None))).json()
    assert tool["search_trace"]["mode"] == "real" and default["search_trace"]["mode"] == "self"
    async with serve(engine(), FakeBackend(name="local"), search_mode="entropy") as http:
        entropy = (await http.post(URL, json=body())).json()
    assert entropy["search_trace"]["mode"] == "entropy"  # a web_search tool keeps the server's hybrid
    async with serve(engine(), FakeBackend(name="local")) as http:  # a plain model: the default is off
        off = await http.post(URL, json=body(tools=[]))
        client_mode = await http.post(URL, json=body(search_mode="client"))
        explicit = (await http.post(URL, json=body(tools=[], search_mode="real"))).json()
    error = assert_error(off, 400, param="tools")
    assert "/v1/chat/completions" in error["message"] and "web_search" in error["message"]
    assert_error(client_mode, 400, param="search_mode")
    assert explicit["search_trace"]["mode"] == "real"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"store": True}, "store"),
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
    ],
)
async def test_stored_state_is_refused_with_a_clear_400(extra: dict[str, Any], param: str) -> None:
    async with serve(engine(), FakeBackend(name="local")) as http:
        r = await http.post(URL, json=body(**extra))
        with pytest.raises(openai.BadRequestError) as raised:
            await client_of(http).responses.create(model=MODEL, input=QUESTION, **extra)
    error = assert_error(r, 400, param=param, code="unsupported_parameter")
    assert "stateless" in error["message"] and "input" in error["message"]
    assert raised.value.param == param


async def test_store_false_is_fine() -> None:
    async with serve(engine(), FakeBackend(name="local")) as http:
        r = await http.post(URL, json=body(store=False, metadata={"k": "v"}))
    assert r.status_code == 200 and r.json()["store"] is False and r.json()["metadata"] == {"k": "v"}


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        (
            {"tools": [{"type": "function", "name": "f", "parameters": {}}]},
            "tools[0].type",
            "unsupported_tool",
        ),
        (
            {"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]},
            "tools[0].type",
            "unsupported_tool",
        ),
        (
            {"tools": [{"type": "web_search", "filters": {"allowed_domains": ["a.org"]}}]},
            "tools[0].filters",
            None,
        ),
        (
            {"tools": [{"type": "web_search", "search_context_size": "huge"}]},
            "tools[0].search_context_size",
            None,
        ),
        ({"input": []}, "input", None),
        ({"input": "  "}, "input", None),
        ({"input": [{"role": "system", "content": "Be brief."}]}, "input", None),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
            "input[0].type",
            "unsupported_input_item",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input[0].content[0].type",
            "unsupported_content",
        ),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", None),
        ({"text": {"format": {"type": "json_object"}}}, "text.format", "unsupported_parameter"),
        ({"max_output_tokens": 0}, "max_output_tokens", None),
        ({"temperature": 3}, "temperature", None),
        ({"input": 5}, "input", None),
    ],
)
async def test_bad_requests_are_400s_naming_the_field(
    extra: dict[str, Any], param: str, code: str | None
) -> None:
    async with serve(engine(), FakeBackend(name="local")) as http:
        r = await http.post(URL, json=body(**extra))
    assert_error(r, 400, param=param, code=code, type_="invalid_request_error")


async def test_unknown_model_missing_key_and_bad_json() -> None:
    async with serve(engine(), FakeBackend(name="local"), api_keys=["k1"]) as http:
        no_key = await http.post(URL, json=body())
        wrong_model = await http.post(URL, json=body(model="gpt-5"), headers={"Authorization": "Bearer k1"})
        bad_json = await http.post(URL, content=b"{", headers={"Authorization": "Bearer k1"})
        ok = await http.post(URL, json=body(), headers={"Authorization": "Bearer k1"})
    assert_error(no_key, 401, code="missing_api_key")
    assert_error(wrong_model, 404, param="model", code="model_not_found")
    assert_error(bad_json, 400, code="invalid_json")
    assert ok.status_code == 200


async def test_input_messages_instructions_and_echoed_items() -> None:
    scripted = engine()
    items = [
        {"role": "developer", "content": "Cite Wikipedia."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Who wrote Hamlet?"}]},
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "x"}],
        },
        {
            "type": "web_search_call",
            "id": "ws_1",
            "status": "completed",
            "action": {"type": "search", "query": "q"},
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Shakespeare", "annotations": []}],
        },
        {"role": "user", "content": QUESTION},
    ]
    async with serve(scripted, FakeBackend(name="local")) as http:
        r = await http.post(URL, json=body(input=items, instructions="Answer briefly."))
    assert r.status_code == 200, r.text
    prompt = scripted.calls[0].prompt
    assert prompt.startswith("<|system|>\nAnswer briefly.\n<|developer|>\nCite Wikipedia.\n<|user|>\n")
    assert f"Question: {QUESTION}" in prompt and "Hamlet" not in prompt  # the last user message is asked
    assert r.json()["instructions"] == "Answer briefly."


async def test_sampling_budget_and_search_limits_reach_the_loop() -> None:
    backend = FakeBackend(name="local")
    scripted = ScriptedEngine(["<search> a </search>", "<search> b </search>", "<answer> c </answer>"])
    tools = [{"type": "web_search", "search_context_size": "low", "user_location": {"type": "approximate"}}]
    async with serve(scripted, backend) as http:
        r = await http.post(URL, json=body(tools=tools, max_tool_calls=1, temperature=0.5, top_p=0.9))
    response = r.json()
    assert backend.queries == [("a", 1)]  # low: one result; one search at most
    assert len(response["search_trace"]["steps"]) == 1
    assert (scripted.calls[0].options.temperature, scripted.calls[0].options.top_p) == (0.5, 0.9)
    assert (response["temperature"], response["top_p"], response["max_tool_calls"]) == (0.5, 0.9, 1)
    assert response["tools"] == [{"type": "web_search", "search_context_size": "low"}]


async def test_max_output_tokens_ends_an_incomplete_response() -> None:
    long = "<think> " + " ".join(f"w{i}" for i in range(50)) + " </think>"
    async with serve(ScriptedEngine(long), FakeBackend(name="local")) as http:
        whole = await http.post(URL, json=body(max_output_tokens=10))
        streamed = await http.post(URL, json=body(max_output_tokens=10, stream=True))
        # as OpenAI's own incomplete responses: the stream helper has no completed response to give
        with pytest.raises(RuntimeError, match="response.completed"):
            async with client_of(http).responses.stream(
                model=MODEL, input=QUESTION, max_output_tokens=10, tools=[{"type": "web_search"}]
            ) as stream:
                await stream.get_final_response()
    parsed = openai_shapes.response(whole.json())
    assert parsed.status == "incomplete" and parsed.incomplete_details
    assert parsed.incomplete_details.reason == "max_output_tokens"
    assert parsed.output[-1].status == "incomplete" and parsed.output_text == ""  # type: ignore[union-attr]
    assert parsed.usage and parsed.usage.output_tokens == 10
    events = openai_shapes.stream_events(streamed.text)
    assert events[-1].type == "response.incomplete"


async def test_an_engine_failure_mid_stream_is_an_error_event_then_response_failed() -> None:
    failing = ScriptedEngine(search_then(ANSWER), fail_after_tokens=2)
    async with serve(failing, FakeBackend(name="local")) as http:
        streamed = await http.post(URL, json=body(stream=True))
        whole = await http.post(URL, json=body())
    events = openai_shapes.stream_events(streamed.text)
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    error, failed = events[-2:]
    assert error.code == "engine_error" and error.message  # type: ignore[attr-defined]
    assert failed.response.status == "failed" and failed.response.error.code == "server_error"  # type: ignore[attr-defined]
    assert_error(whole, 500, code="engine_error")


async def test_over_the_concurrency_limit_is_429_and_the_route_is_counted() -> None:
    slow = ScriptedEngine(
        search_then(" ".join(f"w{i}" for i in range(20)) + " <answer> x </answer>"), token_delay=0.05
    )
    async with serve(slow, FakeBackend(name="local"), max_concurrency=1) as http:
        running = asyncio.create_task(http.post(URL, json=body(stream=True)))
        await wait_until(lambda: slow.num_unfinished_requests() == 1)
        refused = await http.post(URL, json=body())
        assert (await running).status_code == 200
        text = (await http.get("/metrics")).text
    assert_error(refused, 429, code="rate_limit_exceeded")
    assert metric(text, "ssrl_requests_total", route=URL, status="429") == 1.0
    assert metric(text, "ssrl_requests_total", route=URL, status="200") == 1.0


async def test_the_openai_agents_sdk_runs_the_agent_through_its_responses_model() -> None:
    import agents  # openai-agents, a test dependency

    agents.set_tracing_disabled(True)  # the SDK would upload traces to OpenAI
    async with serve(engine(), FakeBackend(name="local")) as http:
        model = agents.OpenAIResponsesModel(model=MODEL, openai_client=client_of(http))
        agent = agents.Agent(
            name="ssrl", instructions="Answer briefly.", tools=[agents.WebSearchTool()], model=model
        )
        result = await agents.Runner.run(agent, QUESTION)
        streamed = agents.Runner.run_streamed(agent, QUESTION)
        kinds = {getattr(event, "data", event).type async for event in streamed.stream_events()}
        # a second turn sends the first turn's items back (reasoning and web_search_call skipped)
        again = await agents.Runner.run(
            agent, [*result.to_input_list(), {"role": "user", "content": QUESTION}]
        )
    assert result.final_output == streamed.final_output == again.final_output == "Paris"
    items = [type(item.raw_item).__name__ for item in result.new_items]
    assert items == ["ResponseReasoningItem", "ResponseFunctionWebSearch", "ResponseOutputMessage"]
    message = result.new_items[-1].raw_item
    assert message.content[0].annotations[0].url == PARIS_URL
    assert {"response.web_search_call.completed", "response.output_text.annotation.added"} <= kinds


async def test_what_langchain_keeps_of_the_citations() -> None:
    """docs/sources-and-responses.md says it: nothing over chat completions, everything over the
    Responses API (use_responses_api=True)."""
    from langchain_openai import ChatOpenAI

    async with serve(engine(), FakeBackend(name="local")) as http:
        common: dict[str, Any] = {"model": MODEL, "base_url": "http://test/v1", "api_key": "none"}
        chat = ChatOpenAI(**common, http_async_client=http, extra_body={"search_mode": "real"})
        over_chat = await chat.ainvoke(QUESTION)
        responses = ChatOpenAI(**common, http_async_client=http, use_responses_api=True)
        over_responses = await responses.bind_tools([{"type": "web_search"}]).ainvoke(QUESTION)
    assert over_chat.content == "Paris" and "annotations" not in str(over_chat.additional_kwargs)
    blocks = over_responses.content
    assert isinstance(blocks, list)
    assert [b["type"] for b in blocks] == ["reasoning", "web_search_call", "text"]  # type: ignore[index]
    assert blocks[-1]["annotations"][0]["url"] == PARIS_URL  # type: ignore[index]
    assert blocks[1]["search_source"] == "real"  # type: ignore[index]
