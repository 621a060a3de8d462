"""Shared helpers of the tests: request bodies, the OpenAI error shape, SSE and metrics parsing."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

MODEL = "smollm2-135m-instruct"
#: What a default ScriptedEngine answers: 5 tokens on its word-boundary tokenizer.
SCRIPTED_TEXT = "Hello from the scripted engine."
SCRIPTED_TOKENS = 5
#: "<|user|>", "\nHi", "\n<|assistant|>", "\n": the ScriptedEngine prompt for one user message "Hi".
HI_PROMPT_TOKENS = 4

ERROR_KEYS = {"message", "type", "param", "code"}


def chat(content: object = "Hi", **extra: object) -> dict[str, Any]:
    """A chat request body for the served model with one user message."""
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def ask(question: str = "What is the capital of France?", **extra: object) -> dict[str, Any]:
    """A chat request body asking one question (the search modes answer it)."""
    return chat(question, **extra)


def count_tokens(text: str) -> int:
    """Tokens of ``text`` under the ScriptedEngine tokenizer (words with their leading space)."""
    return len(re.findall(r"\s*\S+|\s+", text))


def assert_error(
    response: httpx.Response,
    status: int,
    *,
    code: str | None = None,
    param: str | None = None,
    type_: str | None = None,
) -> dict[str, Any]:
    """The response is ``status`` with exactly OpenAI's error body; returns the inner error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    return assert_error_body(body, code=code, param=param, type_=type_)


def assert_error_body(
    body: Any, *, code: str | None = None, param: str | None = None, type_: str | None = None
) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    if type_ is not None:
        assert error["type"] == type_, error
    return error


def sse_payloads(body: str) -> list[str]:
    """The ``data:`` payloads of an event stream, checking the framing line by line:
    every event is exactly one ``data: ...`` line followed by one blank line."""
    assert body.endswith("\n\n"), body[-200:]
    lines = body.split("\n")[:-1]  # the final "\n" leaves one empty string behind
    assert len(lines) % 2 == 0, lines
    payloads = []
    for data_line, blank in zip(lines[::2], lines[1::2], strict=True):
        assert data_line.startswith("data: "), data_line
        assert blank == "", (data_line, blank)
        payloads.append(data_line[len("data: ") :])
    return payloads


def sse_json(body: str) -> list[dict[str, Any]]:
    """The JSON events of a stream that ends with exactly ``data: [DONE]``."""
    payloads = sse_payloads(body)
    assert payloads[-1] == "[DONE]", payloads[-3:]
    assert payloads.count("[DONE]") == 1
    return [json.loads(p) for p in payloads[:-1]]


def metric(text: str, sample: str, **labels: str) -> float | None:
    """The value of one sample (e.g. ``ssrl_requests_total``) with exactly these labels."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    return None


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, interval: float = 0.01
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@asynccontextmanager
async def served(config: uvicorn.Config) -> AsyncIterator[int]:
    """Serve ``config`` (port 0: one the OS picks) with a real uvicorn server in this event loop;
    yields the port, and stops the server on the way out."""
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task
