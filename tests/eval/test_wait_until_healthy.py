"""ssrl-eval --base-url waits for the service's /health before its first question (a question asked
while the engine loads gets a 503 and would be recorded as an error)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from evals.__main__ import wait_until_healthy


def _health(*replies: tuple[int, dict[str, str]]) -> tuple[httpx.MockTransport, list[str]]:
    """A /health that answers ``replies`` in turn (the last one for ever), and the paths asked."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        status, body = replies[min(len(asked), len(replies)) - 1]
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler), asked


def test_it_waits_while_the_model_loads_and_returns_once_it_is_ready() -> None:
    loading = (503, {"status": "loading", "model": "m"})
    transport, asked = _health(loading, loading, (200, {"status": "ok", "model": "m"}))
    asyncio.run(wait_until_healthy("http://svc", 30, interval=0, transport=transport))
    assert asked == ["/health"] * 3


def test_a_model_that_failed_to_load_stops_it_at_once() -> None:
    transport, asked = _health((503, {"status": "failed", "model": "m", "error": "no such model"}))
    with pytest.raises(RuntimeError, match="no such model"):
        asyncio.run(wait_until_healthy("http://svc", 30, interval=0, transport=transport))
    assert len(asked) == 1


def test_it_gives_up_after_its_timeout_and_says_what_it_last_saw() -> None:
    transport, asked = _health((503, {"status": "loading", "model": "m"}))
    with pytest.raises(TimeoutError, match="loading"):
        asyncio.run(wait_until_healthy("http://svc", 0, interval=0, transport=transport))
    assert len(asked) == 1


def test_an_unreachable_server_is_waited_for_then_reported() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(TimeoutError, match="unreachable"):
        asyncio.run(wait_until_healthy("http://svc", 0, interval=0, transport=httpx.MockTransport(refuse)))
