"""LangChain's ChatOpenAI against the live server on the embedded model: what it keeps and loses of
a reply (docs/modes-and-protocol.md, "From LangChain"), and the recipe that page gives to reach the
trajectory, run as it is written there (the code block is read from the page)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.e2e.conftest import MODEL
from tests.e2e.launcher import RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "modes-and-protocol.md"
QUESTION = "Where is Mount Kilimanjaro?"


def recipe(server: RunningServer) -> dict[str, Any]:
    """The page's LangChain code block, run against the test server (its address and key)."""
    section = PAGE.read_text().split("## From LangChain", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    assert 'base_url="http://localhost:8000/v1", api_key="none"' in code
    code = code.replace("http://localhost:8000/v1", f"{server.base_url}/v1").replace(
        'api_key="none"', f'api_key="{server.api_key}", max_tokens=400'
    )
    namespace: dict[str, Any] = {"__name__": "recipe"}
    exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace


def test_chat_openai_keeps_the_answer_and_loses_the_trajectory(server: RunningServer) -> None:
    llm = ChatOpenAI(
        model=MODEL,
        base_url=f"{server.base_url}/v1",
        api_key=server.api_key,  # type: ignore[arg-type]
        max_tokens=400,
        extra_body={"search_mode": "self"},
    )
    reply = llm.invoke(QUESTION)
    assert isinstance(reply.content, str) and reply.response_metadata["finish_reason"] in {"stop", "length"}
    assert (
        "reasoning_content" not in reply.additional_kwargs and "search_trace" not in reply.response_metadata
    )
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0


def test_the_documented_recipe_reaches_the_trajectory(server: RunningServer) -> None:
    ns = recipe(server)
    reply, trace = ns["reply"], ns["trace"]
    assert ns["answer"] == reply.content
    assert "<search>" in ns["trajectory"] and "</search>" in ns["trajectory"]
    assert trace["mode"] == "real" and trace["end_reason"] and trace["steps"]
    assert trace["steps"][0]["query"] in ns["trajectory"]
    # streamed, the chunks add up to the same fields
    streamed = None
    for chunk in ns["llm"].stream(QUESTION):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None
    assert streamed.additional_kwargs["reasoning_content"] == ns["trajectory"]  # greedy, same question
    assert streamed.response_metadata["search_trace"]["end_reason"] == trace["end_reason"]
    assert streamed.content == reply.content


def test_after_a_tool_call_the_recipe_keeps_what_follows_the_results(server: RunningServer) -> None:
    """Client mode through bind_tools: plain ChatOpenAI's final reply holds only the answer; the
    recipe's keeps the text the model wrote after the caller's results."""
    ns = recipe(server)

    def search(query: str) -> str:
        """Search for a one-line query."""
        return "Mount Kilimanjaro is a dormant volcano in Tanzania, the highest mountain in Africa."

    finals = {}
    for name, cls in (("plain", ChatOpenAI), ("recipe", ns["SSRLChatOpenAI"])):
        llm = cls(
            model=MODEL,
            base_url=f"{server.base_url}/v1",
            api_key=server.api_key,
            max_tokens=400,
            temperature=0,
            max_retries=0,
            extra_body={"search_mode": "client"},  # the test server's default mode is off
        )
        bound = llm.bind_tools([search])
        messages: list[Any] = [HumanMessage(QUESTION)]
        reply = bound.invoke(messages)
        rounds = 0
        while reply.tool_calls and rounds < 3:
            call = reply.tool_calls[0]
            messages += [reply, ToolMessage(search(**call["args"]), tool_call_id=call["id"])]
            reply = bound.invoke(messages)
            rounds += 1
        assert rounds >= 1, reply  # the model searched at least once
        finals[name] = reply
    assert "reasoning_content" not in finals["plain"].additional_kwargs
    after = finals["recipe"].additional_kwargs["reasoning_content"]
    assert after.strip() and "<information>" not in after  # this request's part: after the results
    assert finals["recipe"].response_metadata["search_trace"]["mode"] == "client"
