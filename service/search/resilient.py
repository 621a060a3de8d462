"""What every backend gets, whatever it speaks: a per-call deadline, retries with exponential backoff
honouring Retry-After, a concurrency limit, a TTL+LRU result cache, coalescing of identical in-flight
queries, and metrics. The agent loop only ever sees these wrappers."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from cachetools import TTLCache
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from service.search.base import Doc, SearchBackend, SearchError
from service.search.metrics import SearchMetrics

logger = logging.getLogger(__name__)

CacheKey = tuple[str, int]

#: First backoff in seconds (doubling each retry) and the random jitter added to each.
BACKOFF_BASE = 0.2
BACKOFF_JITTER = 0.2


def normalise_query(query: str) -> str:
    """The cache key of a query: lower-case, runs of whitespace folded to one space."""
    return " ".join(query.lower().split())


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, SearchError) and exc.retryable


def _consume(future: asyncio.Future[list[Doc]]) -> None:
    """Mark an outcome as seen, so a failure nobody waited for is not reported as 'never retrieved'."""
    if not future.cancelled():
        future.exception()


class ResilientBackend:
    """Wraps a raw backend with the shared behaviour; ``name`` is the backend's own."""

    def __init__(
        self,
        inner: SearchBackend,
        metrics: SearchMetrics,
        *,
        timeout: float | None = None,
        retries: int = 2,
        max_retry_wait: float = 10.0,
        concurrency: int = 16,
        cache_ttl: float = 3600.0,
        cache_size: int = 10_000,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.metrics = metrics
        #: Seconds one call may take, end to end (None: the backend's own timeouts only).
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._limit = asyncio.Semaphore(concurrency)
        self._cache: TTLCache[CacheKey, tuple[Doc, ...]] | None = (
            TTLCache(maxsize=cache_size, ttl=cache_ttl) if cache_ttl > 0 and cache_size > 0 else None
        )
        self._in_flight: dict[CacheKey, asyncio.Future[list[Doc]]] = {}

    def __repr__(self) -> str:
        return f"ResilientBackend({self.inner!r})"

    def cached(self, query: str, top_k: int) -> list[Doc] | None:
        """The cached results of ``query`` (a cache hit, counted), or None."""
        hit = self._cache.get((normalise_query(query), top_k)) if self._cache is not None else None
        if hit is None:
            return None
        self.metrics.cache_hits.labels(self.name).inc()
        return list(hit)

    async def search(self, query: str, top_k: int) -> list[Doc]:
        key = (normalise_query(query), top_k)
        if not key[0]:
            return []
        cached = self.cached(query, top_k)
        if cached is not None:
            return cached
        future = self._in_flight.get(key)
        if future is not None and not future.done():
            self.metrics.coalesced.labels(self.name).inc()
        else:
            future = asyncio.ensure_future(self._fetch(query, top_k, key))
            self._in_flight[key] = future
            future.add_done_callback(lambda _: self._in_flight.pop(key, None))
            future.add_done_callback(_consume)
        # shield: one caller leaving (a client disconnect) does not cancel the others' call
        return list(await asyncio.shield(future))

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SearchError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_retry_wait)
        backoff = BACKOFF_BASE * 2 ** (state.attempt_number - 1) + random.uniform(0, BACKOFF_JITTER)
        return min(backoff, self.max_retry_wait)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        kind = exc.kind if isinstance(exc, SearchError) else type(exc).__name__
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.info("search backend %s: %s, retry %d in %.2fs", self.name, kind, state.attempt_number, wait)

    async def _fetch(self, query: str, top_k: int, key: CacheKey) -> list[Doc]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                docs = await self._call(query, top_k)
        if self._cache is not None:
            self._cache[key] = tuple(docs)
        return docs

    async def _call(self, query: str, top_k: int) -> list[Doc]:
        """One attempt. The concurrency slot is held for the attempt only, not during backoff."""
        async with self._limit:
            self.metrics.calls.labels(self.name).inc()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout):
                    docs = await self.inner.search(query, top_k)
            except TimeoutError as exc:
                error = SearchError(self.name, "timeout", f"no answer in {self.timeout}s", retryable=True)
                self._count(error)
                raise error from exc
            except SearchError as exc:
                self._count(exc)
                raise
            except Exception as exc:  # a bug or surprise in a backend must not lose the request
                logger.exception("search backend %s failed unexpectedly", self.name)
                error = SearchError(self.name, "bad_response", type(exc).__name__)
                self._count(error)
                raise error from exc
            finally:
                self.metrics.latency.labels(self.name).observe(time.perf_counter() - started)
        if not isinstance(docs, list) or not all(isinstance(d, Doc) for d in docs):
            error = SearchError(self.name, "bad_response", "the backend returned something else than Docs")
            self._count(error)
            raise error
        return docs[:top_k]

    def _count(self, error: SearchError) -> None:
        self.metrics.errors.labels(self.name, error.kind).inc()
        logger.info("search backend %s: %s", self.name, error.kind)

    async def aclose(self) -> None:
        await self.inner.aclose()
