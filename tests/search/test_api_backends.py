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
    "searchParameters": {"q": "capital of France", "type": "search"},
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
    "query": "capital of France",
    "answer": None,
    "results": [
        {
            "title": "Paris - Wikipedia",
            "url": "https://en.wikipedia.org/wiki/Paris",
            "content": "Paris is the capital of France.",
            "score": 0.98,
        },
        {"title": "France", "url": "https://example.org/fr", "content": "A country.", "score": 0.5},
    ],
    "response_time": 0.9,
}
BRAVE = {
    "type": "search",
    "query": {"original": "capital of France"},
    "web": {
        "type": "search",
        "results": [
            {
                "title": "Paris - Wikipedia",
                "url": "https://en.wikipedia.org/wiki/Paris",
                "description": "Paris is the <strong>capital</strong> of France &amp; its largest city.",
            },
            {"title": "France", "url": "https://example.org/fr", "description": "A country."},
        ],
    },
}
SEARXNG = {
    "query": "capital of France",
    "number_of_results": 2,
    "results": [
        {
            "title": "Paris - Wikipedia",
            "url": "https://en.wikipedia.org/wiki/Paris",
            "content": "Paris is the capital of France.",
            "engine": "wikipedia",
            "score": 2.5,
        },
        {"title": "France", "url": "https://example.org/fr", "content": "A country.", "engine": "ddg"},
    ],
}

# backend, answer, method, path, header carrying the key, its value
CASES = [
    (SerperBackend, SERPER, "POST", "/search", "x-api-key", KEY),
    (TavilyBackend, TAVILY, "POST", "/search", "authorization", f"Bearer {KEY}"),
    (BraveBackend, BRAVE, "GET", "/res/v1/web/search", "x-subscription-token", KEY),
    (SearxngBackend, SEARXNG, "GET", "/search", "authorization", f"Bearer {KEY}"),
]
BACKENDS = [case[0] for case in CASES]


def make(cls, recorder: Recorder, timeout: float = 5.0, key: str | None = KEY):
    return cls(recorder.client(), "https://api.example/", timeout, api_key=key)


@pytest.mark.parametrize(("cls", "payload", "method", "path", "header", "value"), CASES)
async def test_success_maps_results_and_sends_the_key(cls, payload, method, path, header, value) -> None:
    recorder = Recorder(httpx.Response(200, json=payload))
    docs = await make(cls, recorder).search("capital of France", 3)
    request = recorder.requests[0]
    assert (request.method, request.url.host, request.url.path) == (method, "api.example", path)
    assert request.headers[header] == value
    assert [d.title for d in docs] == ["Paris - Wikipedia", "France"]
    assert docs[0].url == "https://en.wikipedia.org/wiki/Paris"
    assert docs[0].text.startswith("Paris is the capital of France")
    assert docs[1].text == "A country."


async def test_scores_are_mapped_where_the_api_gives_them() -> None:
    serper = await make(SerperBackend, Recorder(httpx.Response(200, json=SERPER))).search("q", 3)
    assert [d.score for d in serper] == [1.0, 0.5]  # 1 / position
    tavily = await make(TavilyBackend, Recorder(httpx.Response(200, json=TAVILY))).search("q", 3)
    assert [d.score for d in tavily] == [0.98, 0.5]
    searx = await make(SearxngBackend, Recorder(httpx.Response(200, json=SEARXNG))).search("q", 3)
    assert [d.score for d in searx] == [2.5, None]
    brave = await make(BraveBackend, Recorder(httpx.Response(200, json=BRAVE))).search("q", 3)
    assert [d.score for d in brave] == [None, None]


async def test_brave_markup_is_removed() -> None:
    docs = await make(BraveBackend, Recorder(httpx.Response(200, json=BRAVE))).search("q", 3)
    assert docs[0].text == "Paris is the capital of France & its largest city."


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


async def test_searxng_sends_no_authorization_without_a_key() -> None:
    recorder = Recorder(httpx.Response(200, json=SEARXNG))
    await make(SearxngBackend, recorder, key=None).search("q", 3)
    assert "authorization" not in recorder.requests[0].headers


@pytest.mark.parametrize(("cls", "payload"), [(c[0], c[1]) for c in CASES])
async def test_top_k_is_honoured(cls, payload) -> None:
    assert len(await make(cls, Recorder(httpx.Response(200, json=payload))).search("q", 1)) == 1


@pytest.mark.parametrize(
    ("cls", "empty"),
    [
        (SerperBackend, {"organic": []}),
        (SerperBackend, {"searchParameters": {"q": "x"}}),  # Serper leaves "organic" out
        (TavilyBackend, {"results": []}),
        (BraveBackend, {"web": {"results": []}}),
        (BraveBackend, {"type": "search"}),  # no "web" at all when nothing was found
        (SearxngBackend, {"results": [], "number_of_results": 0}),
    ],
)
async def test_empty_results(cls, empty) -> None:
    assert await make(cls, Recorder(httpx.Response(200, json=empty))).search("nothing", 3) == []


@pytest.mark.parametrize("cls", BACKENDS)
@pytest.mark.parametrize(
    ("response", "kind", "retryable", "retry_after"),
    [
        (httpx.Response(401, json={"message": f"Unauthorized: {KEY}"}), "auth", False, None),
        (httpx.Response(403), "auth", False, None),
        (httpx.Response(429, headers={"Retry-After": "7"}), "rate_limited", True, 7.0),
        (httpx.Response(500), "http_status", True, None),
        (httpx.Response(503, headers={"Retry-After": "2"}), "http_status", True, 2.0),
        (httpx.Response(404), "http_status", False, None),
        (httpx.Response(200, content=b"<html>not json"), "bad_response", False, None),
        (httpx.Response(200, json=["a", "list"]), "bad_response", False, None),
        (httpx.ReadTimeout("slow"), "timeout", True, None),
        (httpx.ConnectTimeout("slow"), "timeout", True, None),
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
    assert (error.backend, error.kind, error.retryable, error.retry_after) == (
        cls.name,
        kind,
        retryable,
        retry_after,
    )
    assert KEY not in str(error) and KEY not in repr(error.args)


@pytest.mark.parametrize("cls", BACKENDS)
def test_the_key_stays_out_of_the_repr(cls) -> None:
    assert KEY not in repr(make(cls, Recorder()))


async def test_searxng_403_says_to_enable_json() -> None:
    with pytest.raises(SearchError, match="format=json"):
        await make(SearxngBackend, Recorder(httpx.Response(403)), key=None).search("q", 3)


@pytest.mark.parametrize(
    ("cls", "payload"),
    [
        (SerperBackend, {"organic": {"not": "a list"}}),
        (TavilyBackend, {"answer": "no results key"}),
        (BraveBackend, {"web": {"results": "nope"}}),
        (SearxngBackend, {"results": None}),
    ],
)
async def test_wrong_shapes_are_bad_responses(cls, payload) -> None:
    with pytest.raises(SearchError) as caught:
        await make(cls, Recorder(httpx.Response(200, json=payload))).search("q", 3)
    assert caught.value.kind == "bad_response"


async def test_an_injected_client_is_left_open_an_owned_one_is_closed() -> None:
    recorder = Recorder(httpx.Response(200, json=SERPER))
    injected = recorder.client()
    await SerperBackend(injected, "https://s", 5.0, api_key=KEY).aclose()
    assert not injected.is_closed
    owned = recorder.client()
    await SerperBackend(owned, "https://s", 5.0, api_key=KEY, owns_client=True).aclose()
    assert owned.is_closed
