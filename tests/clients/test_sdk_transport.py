"""Retries, backoff and error mapping of the SDK, with httpx.MockTransport."""

from __future__ import annotations

import time

import httpx
import pytest

from ssrl_client import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
)

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def error(status: int, code: str = "x", headers: dict | None = None) -> httpx.Response:
    body = {"error": {"message": f"failed {status}", "type": "t", "param": "p", "code": code}}
    return httpx.Response(status, json=body, headers={"x-request-id": f"req-{status}", **(headers or {})})


class Script:
    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(script: Script, **options) -> Client:
    options.setdefault("model", "m")
    return Client(
        base_url="http://svc", http_client=httpx.Client(transport=httpx.MockTransport(script)), **options
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, BadRequestError), (401, AuthenticationError), (404, NotFoundError), (413, RequestTooLargeError)],
)
def test_client_errors_are_mapped_and_not_retried(status: int, cls: type) -> None:
    script = Script(error(status))
    with pytest.raises(cls) as caught:
        client(script).ask("q")
    assert (caught.value.status_code, caught.value.request_id, caught.value.param) == (
        status,
        f"req-{status}",
        "p",
    )
    assert caught.value.message == f"failed {status}"
    assert len(script.requests) == 1


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_then_succeed(status: int) -> None:
    script = Script(error(status, headers={"Retry-After": "0"}), httpx.Response(200, json=COMPLETION))
    assert client(script).ask("q").answer == "Paris"
    assert len(script.requests) == 2


def test_retry_after_is_honoured() -> None:
    script = Script(error(429, headers={"Retry-After": "0.4"}), httpx.Response(200, json=COMPLETION))
    started = time.monotonic()
    client(script).ask("q")
    assert time.monotonic() - started >= 0.39


def test_exhausted_retries_raise_the_last_error() -> None:
    script = Script(error(429, "rate_limit_exceeded", headers={"Retry-After": "0"}))
    with pytest.raises(RateLimitError) as caught:
        client(script, max_retries=2).ask("q")
    assert len(script.requests) == 3 and caught.value.retry_after == 0.0
    script = Script(error(500, "engine_error"))
    with pytest.raises(ServerError):
        client(script, max_retries=0).ask("q")
    assert len(script.requests) == 1


def test_connection_errors_and_timeouts() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(200, json=COMPLETION))
    assert client(script).ask("q").answer == "Paris"
    with pytest.raises(APIConnectionError):
        client(Script(httpx.ConnectError("refused")), max_retries=1).ask("q")
    with pytest.raises(APITimeoutError):
        client(Script(httpx.ReadTimeout("slow")), max_retries=0).ask("q")


def test_environment_and_request_shape(monkeypatch) -> None:
    monkeypatch.setenv("SSRL_BASE_URL", "http://from-env:9000/v1")
    monkeypatch.setenv("SSRL_API_KEY", "env-key")
    script = Script(httpx.Response(200, json=COMPLETION))
    c = Client(http_client=httpx.Client(transport=httpx.MockTransport(script)), model="m")
    c.ask("Who?", search_mode="entropy", backend="serper", top_k=2, threshold=0.7, max_tokens=64)
    request = script.requests[0]
    assert str(request.url) == "http://from-env:9000/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer env-key"
    import json

    body = json.loads(request.content)
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "Who?"}],
        "max_tokens": 64,
        "search_mode": "entropy",
        "search": {"backend": "serper", "top_k": 2, "threshold": 0.7},
    }


async def test_async_retries_and_mapping() -> None:
    script = Script(error(503, headers={"Retry-After": "0"}), httpx.Response(200, json=COMPLETION))
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    async with AsyncClient(base_url="http://svc", http_client=http, model="m") as c:
        assert (await c.ask("q")).answer == "Paris"
        with pytest.raises(AuthenticationError):
            script.answers = [error(401)]
            script.requests.clear()
            await c.ask("q")
    assert len(script.requests) == 1
