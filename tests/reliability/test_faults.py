"""Faults: a search server on loopback that times out, fails, rate-limits, sends bad JSON or drops the
connection mid-response; an engine that raises mid-generation. Nothing is lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.engine.model_files import BASE_MODEL
from service.engine.scripted import ScriptedEngine, search_then
from service.settings import Settings
from tests.conftest import running

FAULTS = {
    "timeout": "timeout",
    "error500": "http_status",
    "ratelimit": "rate_limited",
    "badjson": "bad_response",
    "drop": "connection",
}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A SearXNG-shaped server whose behaviour is chosen by the query text."""
    request_line = (await reader.readline()).decode()
    while (await reader.readline()).strip():
        pass
    query = request_line.split("q=", 1)[-1].split("&", 1)[0].split(" ", 1)[0]
    try:
        if query.startswith("timeout"):
            await asyncio.sleep(5)
            return
        if query.startswith("drop"):
            writer.write(
                b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"resu'
            )
            await writer.drain()
            return  # closes with 495 bytes missing
        if query.startswith("error500"):
            status, payload, extra = "500 Internal Server Error", b"oops", ""
        elif query.startswith("ratelimit"):
            status, payload, extra = "429 Too Many Requests", b"slow down", "Retry-After: 0\r\n"
        elif query.startswith("badjson"):
            status, payload, extra = "200 OK", b"{not json", ""
        else:
            status, extra = "200 OK", ""
            payload = json.dumps(
                {"results": [{"title": "T", "url": "https://t", "content": "fine text"}]}
            ).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n{extra}Connection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
    finally:
        writer.close()


@asynccontextmanager
async def faulty_search_server() -> AsyncIterator[str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


script = search_then("<information> my own notes </information><answer> done </answer>")


@asynccontextmanager
async def app_client(base_url: str, engine: ScriptedEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        model=BASE_MODEL,
        cache_dir=Path("/nonexistent"),
        search={
            "backend": "searxng",
            "searxng": {"base_url": base_url},
            "timeout": 0.5,
            "retries": 1,
            "max_retry_wait": 0.05,
            "cache_ttl": 0,
        },
    )
    app = create_app(settings, engine=engine)
    async with running(app) as client:
        yield client


def ask(question: str, **extra: object) -> dict:
    return {
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": question}],
        "search_mode": "real",
        **extra,
    }


async def test_every_search_fault_falls_back_and_is_counted() -> None:
    async with faulty_search_server() as url, app_client(url, ScriptedEngine(script)) as client:
        responses = await asyncio.gather(
            *(
                client.post("/v1/chat/completions", json=ask(f"{fault} {i}"))
                for fault in FAULTS
                for i in range(2)
            ),
            client.post("/v1/chat/completions", json=ask("healthy question")),
        )
        metrics = (await client.get("/metrics")).text
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    bodies = [r.json() for r in responses]
    for body in bodies[:-1]:
        step = body["search_trace"]["steps"][0]
        fault = step["query"].split()[0]
        assert (step["source"], step["error"]) == ("fallback", FAULTS[fault]), step
        assert body["choices"][0]["message"]["content"] == "done"
    healthy = bodies[-1]["search_trace"]["steps"][0]
    assert healthy["source"] == "real" and healthy["results"][0]["text"] == "fine text"
    for kind in FAULTS.values():
        # 2 requests per fault, each tried twice (one retry); bad JSON is not retried
        expected = 2.0 if kind == "bad_response" else 4.0
        assert f'ssrl_search_errors_total{{backend="searxng",kind="{kind}"}} {expected}' in metrics, kind
    assert 'ssrl_search_steps_total{mode="real",source="fallback"} 10.0' in metrics


async def test_streams_with_faults_still_end_cleanly() -> None:
    async with faulty_search_server() as url, app_client(url, ScriptedEngine(script)) as client:
        response = await client.post("/v1/chat/completions", json=ask("drop now", stream=True))
    events = [e[6:] for e in response.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    steps = [json.loads(e)["search_step"] for e in events[:-1] if "search_step" in json.loads(e)]
    assert steps[0]["source"] == "fallback" and steps[0]["error"] == "connection"


@pytest.mark.parametrize("stream", [False, True])
async def test_engine_raising_mid_generation_then_serving_again(stream: bool) -> None:
    engine = ScriptedEngine("one two three four five", fail_after_tokens=2)
    async with faulty_search_server() as url, app_client(url, engine) as client:
        body = {
            "model": "smollm2-135m-instruct",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        }
        failed = await client.post("/v1/chat/completions", json=body)
        engine.fail_after_tokens = None
        ok = await client.post("/v1/chat/completions", json=body)
    if stream:
        events = [e[6:] for e in failed.text.split("\n\n") if e]
        assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "engine_error"
    else:
        assert failed.status_code == 500 and set(failed.json()["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }
    assert ok.status_code == 200 and "five" in ok.text
    assert engine.num_unfinished_requests() == 0
