"""Retries honouring Retry-After, the deadline, the cache, coalescing and the metrics, around each HTTP
backend on httpx.MockTransport and around scripted backends."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time

import httpx
import pytest

from service.search.base import Doc, SearchError
from service.search.http import retry_after_seconds
from service.search.metrics import SearchMetrics
from service.search.resilient import ResilientBackend, normalise_query
from service.search.serper import SerperBackend
from tests.search.conftest import Recorder, sample
from tests.search.test_api_backends import CASES, KEY

OK = httpx.Response(
    200, json={"organic": [{"title": "Paris", "link": "https://p", "snippet": "Capital.", "position": 1}]}
)
# each HTTP backend with a success answer of its own API
PER_BACKEND = [pytest.param(cls, payload, id=cls.name) for cls, payload, *_ in CASES]


def wrap_http(cls, recorder: Recorder, metrics: SearchMetrics, **options) -> ResilientBackend:
    options.setdefault("max_retry_wait", 0.05)
    return ResilientBackend(cls(recorder.client(), "https://s", 5.0, api_key=KEY), metrics, **options)


def wrap(recorder: Recorder, metrics: SearchMetrics, **options) -> ResilientBackend:
    return wrap_http(SerperBackend, recorder, metrics, **options)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("-4") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("nan") is None and retry_after_seconds("inf") is None
    in_five = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= retry_after_seconds(in_five) <= 5.0
    assert retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0


def test_normalised_query() -> None:
    assert normalise_query("  Capital\tof \n FRANCE ") == "capital of france"


@pytest.mark.parametrize(("cls", "payload"), PER_BACKEND)
async def test_429_with_retry_after_is_retried_then_succeeds(cls, payload, metrics: SearchMetrics) -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "0.2"}), httpx.Response(200, json=payload)
    )
    backend = wrap_http(cls, recorder, metrics, max_retry_wait=1.0)
    started = time.monotonic()
    docs = await backend.search("capital", 3)
    assert docs and docs[0].title.startswith("Paris")
    assert len(recorder.requests) == 2
    assert time.monotonic() - started >= 0.19  # it waited as asked
    assert sample(metrics, "ssrl_search_errors_total", backend=cls.name, kind="rate_limited") == 1
    assert sample(metrics, "ssrl_search_calls_total", backend=cls.name) == 2


@pytest.mark.parametrize(("cls", "payload"), PER_BACKEND)
async def test_429_until_retries_run_out_is_rate_limited(cls, payload, metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "0"}))
    with pytest.raises(SearchError) as caught:
        await wrap_http(cls, recorder, metrics, retries=2).search("q", 3)
    assert (caught.value.backend, caught.value.kind) == (cls.name, "rate_limited")
    assert KEY not in str(caught.value)
    assert len(recorder.requests) == 3


@pytest.mark.parametrize(("cls", "payload"), PER_BACKEND)
async def test_500_is_retried(cls, payload, metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(500), httpx.Response(502), httpx.Response(200, json=payload))
    assert await wrap_http(cls, recorder, metrics, retries=2).search("q", 3)
    assert len(recorder.requests) == 3
    assert sample(metrics, "ssrl_search_errors_total", backend=cls.name, kind="http_status") == 2


@pytest.mark.parametrize(("cls", "payload"), PER_BACKEND)
async def test_401_is_not_retried(cls, payload, metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(401), httpx.Response(200, json=payload))
    with pytest.raises(SearchError) as caught:
        await wrap_http(cls, recorder, metrics, retries=3).search("q", 3)
    assert caught.value.kind == "auth" and len(recorder.requests) == 1


@pytest.mark.parametrize(("cls", "payload"), PER_BACKEND)
async def test_malformed_json_is_not_retried(cls, payload, metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(200, content=b"{truncated"), httpx.Response(200, json=payload))
    with pytest.raises(SearchError) as caught:
        await wrap_http(cls, recorder, metrics, retries=3).search("q", 3)
    assert caught.value.kind == "bad_response" and len(recorder.requests) == 1


async def test_retry_after_is_capped(metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "3600"}), OK)
    started = time.monotonic()
    await wrap(recorder, metrics, max_retry_wait=0.1).search("q", 3)
    assert time.monotonic() - started < 2


async def test_timeouts_are_retried_then_surface(metrics: SearchMetrics) -> None:
    recovered = Recorder(httpx.ReadTimeout("slow"), OK)
    assert await wrap(recovered, metrics).search("q", 3)
    assert sample(metrics, "ssrl_search_errors_total", backend="serper", kind="timeout") == 1
    with pytest.raises(SearchError) as caught:
        await wrap(Recorder(httpx.ConnectTimeout("slow")), metrics, retries=1).search("other", 3)
    assert caught.value.kind == "timeout"


class SlowBackend:
    """A scripted backend: counts calls and how many run at once."""

    name = "slow"

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.calls = 0
        self.running = 0
        self.peak = 0
        self.closed = False

    async def search(self, query: str, top_k: int) -> list[Doc]:
        self.calls += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        return [Doc(query, f"text {i}") for i in range(5)]

    async def aclose(self) -> None:
        self.closed = True


async def test_the_per_call_deadline_covers_any_backend(metrics: SearchMetrics) -> None:
    slow = SlowBackend(delay=5.0)
    started = time.monotonic()
    with pytest.raises(SearchError) as caught:
        await ResilientBackend(slow, metrics, timeout=0.05, retries=1, max_retry_wait=0.01).search("q", 3)
    assert caught.value.kind == "timeout" and slow.calls == 2
    assert time.monotonic() - started < 1
    assert sample(metrics, "ssrl_search_latency_seconds_count", backend="slow") == 2


async def test_repeated_queries_hit_the_cache(metrics: SearchMetrics) -> None:
    recorder = Recorder(OK)
    backend = wrap(recorder, metrics)
    first = await backend.search("Capital  of FRANCE", 3)
    second = await backend.search("capital of france", 3)
    other_k = await backend.search("capital of france", 2)
    assert first == second and other_k
    assert len(recorder.requests) == 2  # top_k is part of the key
    assert sample(metrics, "ssrl_search_cache_hits_total", backend="serper") == 1


async def test_a_cached_result_cannot_be_changed_by_a_caller(metrics: SearchMetrics) -> None:
    backend = ResilientBackend(SlowBackend(delay=0), metrics)
    (await backend.search("q", 3)).clear()
    assert len(await backend.search("q", 3)) == 3


async def test_cache_expires(metrics: SearchMetrics) -> None:
    recorder = Recorder(OK)
    backend = wrap(recorder, metrics, cache_ttl=0.05)
    await backend.search("q", 3)
    await asyncio.sleep(0.1)
    await backend.search("q", 3)
    assert len(recorder.requests) == 2


async def test_cache_is_lru_bounded(metrics: SearchMetrics) -> None:
    slow = SlowBackend(delay=0)
    backend = ResilientBackend(slow, metrics, cache_size=2)
    for query in ("a", "b", "a", "c", "a", "b"):  # b is the least recent when c arrives
        await backend.search(query, 3)
    assert slow.calls == 4
    assert sample(metrics, "ssrl_search_cache_hits_total", backend="slow") == 2


async def test_failures_are_not_cached(metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(401), OK)
    backend = wrap(recorder, metrics)
    with pytest.raises(SearchError):
        await backend.search("q", 3)
    assert await backend.search("q", 3)


async def test_identical_in_flight_queries_are_coalesced(metrics: SearchMetrics) -> None:
    slow = SlowBackend()
    backend = ResilientBackend(slow, metrics, cache_ttl=0)
    results = await asyncio.gather(*(backend.search(q, 3) for q in ["Same query", "same  QUERY"] * 5))
    assert slow.calls == 1
    assert all(r == results[0] for r in results)
    assert sample(metrics, "ssrl_search_coalesced_total", backend="slow") == 9


async def test_coalesced_callers_share_a_failure(metrics: SearchMetrics) -> None:
    recorder = Recorder(httpx.Response(403))
    backend = wrap(recorder, metrics)
    results = await asyncio.gather(*(backend.search("q", 3) for _ in range(4)), return_exceptions=True)
    assert len(recorder.requests) == 1
    assert all(isinstance(r, SearchError) and r.kind == "auth" for r in results)


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
    assert sample(metrics, "ssrl_search_errors_total", backend="slow", kind="bad_response") == 1


async def test_results_are_cut_to_top_k(metrics: SearchMetrics) -> None:
    assert len(await ResilientBackend(SlowBackend(delay=0), metrics).search("q", 2)) == 2


async def test_empty_query_calls_nothing(metrics: SearchMetrics) -> None:
    slow = SlowBackend()
    assert await ResilientBackend(slow, metrics).search("   ", 3) == []
    assert slow.calls == 0


async def test_aclose_reaches_the_backend(metrics: SearchMetrics) -> None:
    slow = SlowBackend()
    await ResilientBackend(slow, metrics).aclose()
    assert slow.closed


@pytest.mark.parametrize(("cls", "payload"), PER_BACKEND)
async def test_the_key_is_never_logged(cls, payload, metrics: SearchMetrics, caplog) -> None:
    recorder = Recorder(httpx.Response(500), httpx.Response(401, json={"error": f"bad key {KEY}"}))
    with caplog.at_level(logging.DEBUG), pytest.raises(SearchError):
        await wrap_http(cls, recorder, metrics, retries=2).search("q", 3)
    assert caplog.records and KEY not in caplog.text
