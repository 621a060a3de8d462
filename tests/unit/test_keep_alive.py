"""The server keeps idle connections open longer than client pools do: uvicorn's own default (5 s)
equals httpx's pool expiry (5 s), so a client reusing a connection just as the server closes it got a
reset instead of a reply (bench.stress saw one such ReadError in 72 requests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from service.__main__ import uvicorn_config
from service.app import create_app
from service.engine.model_files import BASE_MODEL
from service.engine.scripted import ScriptedEngine
from service.settings import Settings
from tests.helpers import served

REQUEST = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


def test_the_default_outlasts_the_idle_time_of_httpx_pools() -> None:
    with httpx.Client() as client:  # the openai SDK's pool too
        pool_expiry = client._transport._pool._keepalive_expiry
    assert pool_expiry is not None
    assert Settings().keep_alive_timeout > pool_expiry


async def open_after_idle(settings: Settings, idle: float) -> bool:
    """Serve the app with ``ssrl-serve``'s uvicorn settings on loopback, make one request on a raw
    keep-alive connection, stay idle ``idle`` seconds: is the connection still open?"""
    app = create_app(settings, engine=ScriptedEngine(lambda p, o: "hi"))
    async with served(uvicorn_config(settings.model_copy(update={"port": 0}), app)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
            await reader.readexactly(length)
            await asyncio.sleep(idle)
            return not (reader.at_eof() or await asyncio.wait_for(reader.read(1), 0.2) == b"")
        except TimeoutError:  # nothing to read and no EOF: still open
            return True
        finally:
            writer.close()


async def test_ssrl_serve_keeps_an_idle_connection_for_the_configured_time(tmp_path: Path) -> None:
    settings = Settings(model=BASE_MODEL, cache_dir=tmp_path, log_level="warning")
    assert await open_after_idle(settings, idle=1.5)
    assert not await open_after_idle(settings.model_copy(update={"keep_alive_timeout": 1.0}), idle=1.5)
