"""Bring your own search: client mode on the real engine, driven by the official ``openai`` package,
LangChain's ``ChatOpenAI`` and LiteLLM, each unchanged (streaming and not), and the SDK's ``search=``.

The embedded model writes its own ``<search>`` (no prefill); the caller's search function answers it
with a Wikipedia-like passage; the model answers after it. The shared e2e server runs with
``--search-mode off``, so the requests name ``search_mode: client`` (a server whose default is an agent
mode, the embedded model's own default, needs no ``extra_body``: the ``search`` tool alone means it).
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai
import pytest

from tests.e2e.conftest import MODEL
from tests.e2e.launcher import BLOCK, RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM fetches a cost map at import

QUESTION = "Which country has Baku as its capital?"
PASSAGES = [
    {
        "title": "Baku",
        "text": "Baku is the capital and largest city of Azerbaijan, on the coast of the Caspian Sea.",
        "url": "https://en.wikipedia.org/wiki/Baku",
    }
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search Wikipedia.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]
EXTRA = {"search_mode": "client"}
MAX_TOKENS = 400


def search(query: str) -> str:
    """Search Wikipedia for a one-line query."""
    assert query.strip() and "\n" not in query
    return json.dumps(PASSAGES)


def check_answer(content: str | None, trace: dict[str, Any] | None = None) -> None:
    assert content and "<answer>" not in content and "<search>" not in content, content
    if trace is not None:
        assert trace["end_reason"] == "answer"
        [step] = trace["steps"]
        assert step["source"] == "client" and step["results"][0]["title"] == "Baku"


@pytest.fixture()
def oai(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120)


def test_openai_package_runs_the_search_as_a_tool_call(oai: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = oai.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, max_tokens=MAX_TOKENS, extra_body=EXTRA
    )
    assert first.choices[0].finish_reason == "tool_calls"
    message = first.choices[0].message
    [call] = message.tool_calls or []
    assert (
        call.function.name == "search" and message.content and message.content.rstrip().endswith("</search>")
    )
    query = json.loads(call.function.arguments)["query"]
    messages += [message, {"role": "tool", "tool_call_id": call.id, "content": search(query)}]
    final = oai.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, max_tokens=MAX_TOKENS, extra_body=EXTRA
    )
    assert final.choices[0].finish_reason == "stop"
    check_answer(final.choices[0].message.content, final.model_extra["search_trace"])
    # the continuation re-used the prefix cache: the question prompt and the text generated for it
    assert final.usage and final.usage.prompt_tokens_details
    assert final.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens - BLOCK  # type: ignore[union-attr]


def _accumulate(stream: Any) -> tuple[dict[str, Any], str | None]:
    """An assistant message from streamed deltas, as openai users assemble one."""
    content, calls, finish = "", {}, None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for piece in delta.tool_calls or []:
            call = calls.setdefault(
                piece.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
            call["id"] = piece.id or call["id"]
            if piece.function:
                call["function"]["name"] += piece.function.name or ""
                call["function"]["arguments"] += piece.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message, finish


def test_openai_package_streaming(oai: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    kwargs: dict[str, Any] = {"model": MODEL, "tools": TOOLS, "max_tokens": MAX_TOKENS, "extra_body": EXTRA}
    message, finish = _accumulate(oai.chat.completions.create(messages=messages, stream=True, **kwargs))
    assert finish == "tool_calls" and message["content"].rstrip().endswith("</search>")
    [call] = message["tool_calls"]
    assert call["id"] and call["function"]["name"] == "search"
    messages += [
        message,
        {
            "role": "tool",
            "tool_call_id": call["id"],
            "content": search(json.loads(call["function"]["arguments"])["query"]),
        },
    ]
    final, finish = _accumulate(oai.chat.completions.create(messages=messages, stream=True, **kwargs))
    assert finish == "stop" and "tool_calls" not in final
    check_answer(final["content"])


@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_langchain_chat_openai_with_bind_tools(server: RunningServer, stream: bool) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=MODEL,
        base_url=f"{server.base_url}/v1",
        api_key=server.api_key,  # type: ignore[arg-type]
        max_tokens=MAX_TOKENS,
        temperature=0,
        max_retries=0,
        extra_body=EXTRA,
    ).bind_tools([search])

    def call(messages: list[Any]) -> Any:
        if not stream:
            return llm.invoke(messages)
        whole = None
        for chunk in llm.stream(messages):
            whole = chunk if whole is None else whole + chunk
        return whole

    messages: list[Any] = [HumanMessage(QUESTION)]
    first = call(messages)
    [tool_call] = first.tool_calls
    assert tool_call["name"] == "search" and first.content.rstrip().endswith("</search>")
    messages += [first, ToolMessage(search(**tool_call["args"]), tool_call_id=tool_call["id"])]
    final = call(messages)
    assert not final.tool_calls
    check_answer(final.content)


@pytest.mark.parametrize("stream", [False, True], ids=["completion", "stream"])
def test_litellm_completion(server: RunningServer, stream: bool) -> None:
    import litellm

    kwargs: dict[str, Any] = {
        "model": f"openai/{MODEL}",
        "api_base": f"{server.base_url}/v1",
        "api_key": server.api_key,
        "tools": TOOLS,
        "max_tokens": MAX_TOKENS,
        "extra_body": EXTRA,
    }

    def call(messages: list[Any]) -> Any:
        if not stream:
            return litellm.completion(messages=messages, **kwargs)
        chunks = list(litellm.completion(messages=messages, stream=True, **kwargs))
        return litellm.stream_chunk_builder(chunks, messages=messages)

    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = call(messages)
    assert first.choices[0].finish_reason == "tool_calls"
    message = first.choices[0].message
    [tool_call] = message.tool_calls
    assert tool_call.function.name == "search" and message.content.rstrip().endswith("</search>")
    query = json.loads(tool_call.function.arguments)["query"]
    messages += [message, {"role": "tool", "tool_call_id": tool_call.id, "content": search(query)}]
    final = call(messages)
    assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
    check_answer(final.choices[0].message.content)


async def test_sdk_search_callable_sync_and_async(server: RunningServer) -> None:
    from ssrl_client import AsyncClient, Client

    queries: list[str] = []

    def sync_search(query: str) -> list[dict[str, Any]]:
        queries.append(query)
        return PASSAGES

    async def async_search(query: str) -> str:
        queries.append(query)
        return PASSAGES[0]["text"]

    with Client(base_url=server.base_url, api_key=server.api_key) as client:
        result = client.ask(QUESTION, search=sync_search, max_tokens=MAX_TOKENS)
    async with AsyncClient(base_url=server.base_url, api_key=server.api_key) as aclient:
        aresult = await aclient.ask(QUESTION, search=async_search, max_tokens=MAX_TOKENS)
    assert len(queries) == 2
    for r in (result, aresult):
        assert r.finish_reason == "stop" and r.answer
        assert [s.source for s in r.steps] == ["client"] and r.steps[0].results[0].text.startswith("Baku is")
