"""A client that closes its connection while the server reads its body is not a server error: the
server logs it at INFO, answers nobody (499) and goes on serving. It was logged as an "unhandled
error" with two tracebacks (service.errors and uvicorn's "Exception in ASGI application") when a
client of an eval run left so, at its start."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from service.__main__ import uvicorn_config
from service.engine.scripted import ScriptedEngine
from service.settings import Settings
from tests.conftest import build_app
from tests.helpers import MODEL, chat, served

PARTIAL = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    b"content-length: 4000\r\n\r\n"
    b'{"model": "m", "messages": [{"role": "user", "content": "'
)


async def test_a_client_that_leaves_mid_body_is_no_server_error(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(model=MODEL, log_level="warning", search_mode="off")
    app = build_app(settings, engine=ScriptedEngine(lambda p, o: "<answer> hi </answer>"))
    caplog.set_level(logging.INFO)
    async with served(uvicorn_config(settings.model_copy(update={"port": 0}), app)) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PARTIAL)
        await writer.drain()
        await asyncio.sleep(0.3)  # the handler is reading the body
        writer.close()
        await writer.wait_closed()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):  # the server notices the closed connection
                if any("left before its body was read" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
            reply = await client.post("/v1/chat/completions", json=chat("hi"))
    assert reply.status_code == 200  # still serving
    left = [r for r in caplog.records if "left before its body was read" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in left] == [
        (logging.INFO, "POST /v1/chat/completions: the client left before its body was read")
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
