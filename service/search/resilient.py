"""What every backend gets: timeouts (in the backend), retries with backoff honouring Retry-After,
a concurrency limit, a TTL+LRU result cache, and coalescing of identical in-flight queries."""

from __future__ import annotations

import asyncio
import logging
import time

from cachetools import TTLCache
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from service.search.base import Doc, SearchBackend, SearchError
from service.search.metrics import SearchMetrics

logger = logging.getLogger(__name__)

CacheKey = tuple[str, int]


def normalise_query(query: str) -> str:
    return " ".join(query.lower().split())


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, SearchError) and exc.retryable


class ResilientBackend:
    """Wraps a raw backend; the agent loop only ever sees these."""

    def __init__(
        self,
        inner: SearchBackend,
        metrics: SearchMetrics,
        *,
        retries: int = 2,
        max_retry_wait: float = 10.0,
        concurrency: int = 16,
        cache_ttl: float = 3600.0,
        cache_size: int = 10_000,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.metrics = metrics
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._limit = asyncio.Semaphore(concurrency)
        self._cache: TTLCache[CacheKey, list[Doc]] | None = (
            TTLCache(maxsize=cache_size, ttl=cache_ttl) if cache_ttl > 0 and cache_size > 0 else None
        )
        self._in_flight: dict[CacheKey, asyncio.Future[list[Doc]]] = {}
        self._backoff = wait_exponential_jitter(multiplier=0.2, max=max_retry_wait, jitter=0.2)

    async def search(self, query: str, top_k: int) -> list[Doc]:
        key = (normalise_query(query), top_k)
        if not key[0]:
            return []
        if self._cache is not None and key in self._cache:
            self.metrics.cache_hits.labels(self.name).inc()
            return list(self._cache[key])
        future = self._in_flight.get(key)
        if future is not None:
            self.metrics.coalesced.labels(self.name).inc()
        else:
            future = asyncio.ensure_future(self._fetch(query, top_k, key))
            self._in_flight[key] = future
            future.add_done_callback(lambda _: self._in_flight.pop(key, None))
        # shield: one caller leaving (a client disconnect) does not cancel the others' call
        return list(await asyncio.shield(future))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SearchError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_retry_wait)
        return float(self._backoff(state))

    async def _fetch(self, query: str, top_k: int, key: CacheKey) -> list[Doc]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async with self._limit:
            async for attempt in retrying:
                with attempt:
                    docs = await self._call(query, top_k)
        if self._cache is not None:
            self._cache[key] = docs
        return docs

    async def _call(self, query: str, top_k: int) -> list[Doc]:
        self.metrics.calls.labels(self.name).inc()
        started = time.perf_counter()
        try:
            return await self.inner.search(query, top_k)
        except SearchError as exc:
            self.metrics.errors.labels(self.name, exc.kind).inc()
            logger.info("search backend %s: %s", self.name, exc.kind)
            raise
        except Exception as exc:  # a bug or surprise in a backend must not lose the request
            self.metrics.errors.labels(self.name, "bad_response").inc()
            logger.exception("search backend %s failed unexpectedly", self.name)
            raise SearchError(self.name, "bad_response", type(exc).__name__) from exc
        finally:
            self.metrics.latency.labels(self.name).observe(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.inner.aclose()
