"""Retries honouring Retry-After, the cache, coalescing and the metrics, around a real HTTP backend."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx
import pytest

from service.search.base import Doc, SearchError
from service.search.http import retry_after_seconds
from service.search.metrics import SearchMetrics
from service.search.resilient import ResilientBackend
from service.search.serper import SerperBackend
from tests.search.conftest import Recorder, sample

OK = httpx.Response(
    200, json={"organic": [{"title": "Paris", "link": "https://p", "snippet": "Capital.", "position": 1}]}
)


def wrap(recorder: Recorder, metrics: SearchMetrics, **options) -> ResilientBackend:
    options.setdefault("max_retry_wait", 0.05)
    return ResilientBackend(
        SerperBackend(recorder.client(), "https://s", 5.0, api_key="k"), metrics, **options
    )


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    in_five = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= retry_after_seconds(in_five) <= 5.0


async def test_429_is_retried_after_the_wait_it_asks_for(metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "0.3"}), OK)
    backend = wrap(recorder, metrics, max_retry_wait=1.0)
    started = time.monotonic()
    docs = await backend.search("capital", 3)
    assert [d.title for d in docs] == ["Paris"]
    assert len(recorder.requests) == 2
    assert time.monotonic() - started >= 0.29  # it waited as asked
    assert sample(metrics, "ssrl_search_errors_total", backend="serper", kind="rate_limited") == 1
    assert sample(metrics, "ssrl_search_calls_total", backend="serper") == 2


async def test_retry_after_is_capped(metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "3600"}), OK)
    started = time.monotonic()
    await wrap(recorder, metrics, max_retry_wait=0.1).search("q", 3)
    assert time.monotonic() - started < 2


async def test_retries_are_exhausted_then_the_error_surfaces(metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(500))
    with pytest.raises(SearchError) as caught:
        await wrap(recorder, metrics, retries=2).search("q", 3)
    assert caught.value.kind == "http_status"
    assert len(recorder.requests) == 3


async def test_auth_errors_are_not_retried(metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(401))
    with pytest.raises(SearchError):
        await wrap(recorder, metrics, retries=3).search("q", 3)
    assert len(recorder.requests) == 1


async def test_timeouts_are_retried(metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.ReadTimeout("slow"), OK)
    assert await wrap(recorder, metrics).search("q", 3)
    assert sample(metrics, "ssrl_search_errors_total", backend="serper", kind="timeout") == 1


async def test_repeated_queries_hit_the_cache(metrics: SearchMetrics) -> None:
    recorder = Recorder(OK)
    backend = wrap(recorder, metrics)
    first = await backend.search("Capital  of FRANCE", 3)
    second = await backend.search("capital of france", 3)
    other_k = await backend.search("capital of france", 2)
    assert first == second and other_k
    assert len(recorder.requests) == 2  # top_k is part of the key
    assert sample(metrics, "ssrl_search_cache_hits_total", backend="serper") == 1


async def test_cache_expires(metrics: SearchMetrics) -> None:
    recorder = Recorder(OK)
    backend = wrap(recorder, metrics, cache_ttl=0.05)
    await backend.search("q", 3)
    await asyncio.sleep(0.1)
    await backend.search("q", 3)
    assert len(recorder.requests) == 2


class SlowBackend:
    name = "slow"

    def __init__(self) -> None:
        self.calls = 0
        self.running = 0
        self.peak = 0

    async def search(self, query: str, top_k: int) -> list[Doc]:
        self.calls += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        return [Doc(query, "text")]

    async def aclose(self) -> None:
        return None


async def test_identical_in_flight_queries_are_coalesced(metrics: SearchMetrics) -> None:
    slow = SlowBackend()
    backend = ResilientBackend(slow, metrics, cache_ttl=0)
    results = await asyncio.gather(*(backend.search("same query", 3) for _ in range(10)))
    assert slow.calls == 1
    assert all(r == results[0] for r in results)
    assert sample(metrics, "ssrl_search_coalesced_total", backend="slow") == 9


async def test_concurrency_limit(metrics: SearchMetrics) -> None:
    slow = SlowBackend()
    backend = ResilientBackend(slow, metrics, concurrency=2, cache_ttl=0)
    await asyncio.gather(*(backend.search(f"q{i}", 3) for i in range(8)))
    assert slow.calls == 8 and slow.peak == 2


async def test_a_cancelled_caller_does_not_cancel_the_others(metrics: SearchMetrics) -> None:
    slow = SlowBackend()
    backend = ResilientBackend(slow, metrics)
    leaving = asyncio.ensure_future(backend.search("q", 3))
    staying = asyncio.ensure_future(backend.search("q", 3))
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert (await staying)[0].title == "q"


async def test_unexpected_backend_bugs_become_search_errors(metrics: SearchMetrics) -> None:
    class Broken(SlowBackend):
        async def search(self, query: str, top_k: int) -> list[Doc]:
            raise KeyError("oops")

    with pytest.raises(SearchError) as caught:
        await ResilientBackend(Broken(), metrics).search("q", 3)
    assert caught.value.kind == "bad_response"


async def test_empty_query_calls_nothing(metrics: SearchMetrics) -> None:
    slow = SlowBackend()
    assert await ResilientBackend(slow, metrics).search("   ", 3) == []
    assert slow.calls == 0
