"""The SDK's shape as openai-python's: explicit constructor arguments, errors that carry their HTTP
response, and streams that close their response however iteration ends."""

from __future__ import annotations

import json

import httpx
import pytest

from ssrl_client import AsyncClient, Client, NotFoundError, ServerError

CHUNK = {
    "id": "c",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": "stop"}],
}
ERROR_FRAME = {"error": {"message": "boom", "type": "server_error", "param": None, "code": "engine_error"}}


def sse(*payloads: object) -> httpx.Response:
    body = "".join(f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n" for p in payloads)
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream", "x-request-id": "r"})


def answering(response: httpx.Response) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: response)


def test_the_constructors_take_named_arguments_only() -> None:
    with pytest.raises(TypeError):
        Client(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        AsyncClient(bogus=1)  # type: ignore[call-arg]
    client = Client(base_url="http://svc/v1", api_key="k", model="m", timeout=3.0, max_retries=0)
    assert (client.base_url, client.api_key, client.model, client.timeout, client.max_retries) == (
        "http://svc",
        "k",
        "m",
        3.0,
        0,
    )
    client.close()


def test_status_errors_carry_the_response() -> None:
    missing = httpx.Response(404, json={"error": {"message": "no", "type": "t", "param": None, "code": "x"}})
    with (
        Client(base_url="http://svc", model="m", http_client=httpx.Client(transport=answering(missing))) as c,
        pytest.raises(NotFoundError) as caught,
    ):
        c.chat([{"role": "user", "content": "Hi"}])
    assert caught.value.response is not None and caught.value.response.status_code == 404


def test_streams_close_their_response_when_iteration_ends() -> None:
    transport = answering(sse(CHUNK, "[DONE]"))
    with Client(base_url="http://svc", model="m", http_client=httpx.Client(transport=transport)) as c:
        stream = c.chat([{"role": "user", "content": "Hi"}], stream=True)  # no with block
        assert [type(e).__name__ for e in stream] == ["AnswerDelta", "Done"]
        assert stream.response.is_closed


def test_an_error_frame_carries_the_stream_response_and_closes_it() -> None:
    transport = answering(sse(CHUNK, ERROR_FRAME, "[DONE]"))
    with Client(base_url="http://svc", model="m", http_client=httpx.Client(transport=transport)) as c:
        stream = c.chat([{"role": "user", "content": "Hi"}], stream=True)
        with pytest.raises(ServerError) as caught:
            list(stream)
    assert caught.value.response is stream.response and stream.response.is_closed
    assert caught.value.code == "engine_error"


async def test_async_streams_close_their_response_and_errors_carry_it() -> None:
    transport = answering(sse(CHUNK, ERROR_FRAME, "[DONE]"))
    http = httpx.AsyncClient(transport=transport)
    client = AsyncClient(base_url="http://svc", model="m", http_client=http)
    stream = await client.chat([{"role": "user", "content": "Hi"}], stream=True)
    with pytest.raises(ServerError) as caught:
        [e async for e in stream]
    assert caught.value.response is stream.response and stream.response.is_closed
    await client.close()
    await http.aclose()
