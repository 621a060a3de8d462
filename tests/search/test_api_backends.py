"""Each search API against httpx.MockTransport speaking its documented JSON."""

from __future__ import annotations

import json

import httpx
import pytest

from service.search.base import SearchError
from service.search.brave import BraveBackend
from service.search.searxng import SearxngBackend
from service.search.serper import SerperBackend
from service.search.tavily import TavilyBackend
from tests.search.conftest import Recorder

KEY = "sk-secret-123"

SERPER = {
    "searchParameters": {"q": "capital of France"},
    "answerBox": {"answer": "Paris"},
    "organic": [
        {
            "title": "Paris - Wikipedia",
            "link": "https://en.wikipedia.org/wiki/Paris",
            "snippet": "Paris is the capital of France.",
            "position": 1,
        },
        {"title": "France", "link": "https://example.org/fr", "snippet": "A country.", "position": 2},
    ],
}
TAVILY = {
    "query": "q",
    "answer": None,
    "results": [
        {"title": "Paris", "url": "https://p.example", "content": "Paris is the capital.", "score": 0.98}
    ],
}
BRAVE = {
    "type": "search",
    "web": {
        "results": [
            {
                "title": "Paris",
                "url": "https://p.example",
                "description": "Capital of <strong>France</strong>.",
            }
        ]
    },
}
SEARXNG = {
    "query": "q",
    "results": [
        {
            "title": "Paris",
            "url": "https://p.example",
            "content": "Capital city.",
            "engine": "wikipedia",
            "score": 2.5,
        }
    ],
}

CASES = [
    (SerperBackend, SERPER, "POST", "/search", "x-api-key", KEY),
    (TavilyBackend, TAVILY, "POST", "/search", "authorization", f"Bearer {KEY}"),
    (BraveBackend, BRAVE, "GET", "/res/v1/web/search", "x-subscription-token", KEY),
    (SearxngBackend, SEARXNG, "GET", "/search", "authorization", f"Bearer {KEY}"),
]


def make(cls, recorder: Recorder, timeout: float = 5.0):
    return cls(recorder.client(), "https://api.example", timeout, api_key=KEY)


@pytest.mark.parametrize(("cls", "payload", "method", "path", "header", "value"), CASES)
async def test_success_maps_results_and_sends_the_key(cls, payload, method, path, header, value) -> None:
    recorder = Recorder(httpx.Response(200, json=payload))
    docs = await make(cls, recorder).search("capital of France", 3)
    request = recorder.requests[0]
    assert (request.method, request.url.path) == (method, path)
    assert request.headers[header] == value
    assert docs and docs[0].title.startswith("Paris")
    assert docs[0].url and docs[0].url.startswith("https://")
    assert "capital" in docs[0].text.lower() or "France" in docs[0].text


async def test_request_shapes() -> None:
    serper = Recorder(httpx.Response(200, json=SERPER))
    await make(SerperBackend, serper).search("q1", 2)
    assert json.loads(serper.requests[0].content) == {"q": "q1", "num": 2}
    tavily = Recorder(httpx.Response(200, json=TAVILY))
    await make(TavilyBackend, tavily).search("q2", 4)
    assert json.loads(tavily.requests[0].content) == {
        "query": "q2",
        "max_results": 4,
        "search_depth": "basic",
    }
    brave = Recorder(httpx.Response(200, json=BRAVE))
    await make(BraveBackend, brave).search("q3", 5)
    assert dict(brave.requests[0].url.params) == {"q": "q3", "count": "5"}
    searx = Recorder(httpx.Response(200, json=SEARXNG))
    await make(SearxngBackend, searx).search("q4", 5)
    assert dict(searx.requests[0].url.params) == {"q": "q4", "format": "json"}


async def test_top_k_is_honoured() -> None:
    docs = await make(SerperBackend, Recorder(httpx.Response(200, json=SERPER))).search("q", 1)
    assert len(docs) == 1


@pytest.mark.parametrize(
    ("cls", "empty"),
    [
        (SerperBackend, {"organic": []}),
        (TavilyBackend, {"results": []}),
        (BraveBackend, {"web": {"results": []}}),
        (BraveBackend, {"type": "search"}),
        (SearxngBackend, {"results": []}),
    ],
)
async def test_empty_results(cls, empty) -> None:
    assert await make(cls, Recorder(httpx.Response(200, json=empty))).search("nothing", 3) == []


@pytest.mark.parametrize("cls", [c[0] for c in CASES])
@pytest.mark.parametrize(
    ("response", "kind", "retryable", "retry_after"),
    [
        (httpx.Response(401, json={"message": "Unauthorized"}), "auth", False, None),
        (httpx.Response(403), "auth", False, None),
        (httpx.Response(429, headers={"Retry-After": "7"}), "rate_limited", True, 7.0),
        (httpx.Response(500), "http_status", True, None),
        (httpx.Response(503, headers={"Retry-After": "2"}), "http_status", True, 2.0),
        (httpx.Response(404), "http_status", False, None),
        (httpx.Response(200, content=b"<html>not json"), "bad_response", False, None),
        (httpx.Response(200, json=["a", "list"]), "bad_response", False, None),
        (httpx.ReadTimeout("slow"), "timeout", True, None),
        (httpx.ConnectError("refused"), "connection", True, None),
        (httpx.RemoteProtocolError("peer closed connection mid-response"), "connection", True, None),
    ],
)
async def test_failures_become_search_errors_without_the_key(
    cls, response, kind, retryable, retry_after
) -> None:
    with pytest.raises(SearchError) as caught:
        await make(cls, Recorder(response)).search("q", 3)
    error = caught.value
    assert (error.kind, error.retryable, error.retry_after) == (kind, retryable, retry_after)
    assert KEY not in str(error) and KEY not in repr(error.args)
