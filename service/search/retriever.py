"""The Search-R1 retrieval server API, with concurrent queries batched into one call.

POST {base}/retrieve ``{"queries": [...], "topk": k, "return_scores": true}`` answers
``{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}``, one list per query (without
scores ``[[{"id", "contents"}, ...]]``); "contents" is ``"\\"Title\\"\\ntext"``.

Queries arriving within ``batch_window_ms`` of the first (or until ``max_batch`` are waiting) go
out as one POST, and each caller gets its own list back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from service.search.base import Doc, SearchError
from service.search.corpus import parse_contents
from service.search.http import HttpBackend, optional_score, optional_url

logger = logging.getLogger(__name__)

Waiter = tuple[str, "asyncio.Future[list[Doc]]"]


def parse_hit(hit: Any) -> Doc:
    """One hit, with scores (``{"document": {...}, "score"}``) or without (``{"id", "contents"}``)."""
    if not isinstance(hit, dict):
        raise TypeError("hit is not an object")
    document = hit.get("document", hit)
    if not isinstance(document, dict):
        raise TypeError("document is not an object")
    if "contents" in document:
        title, text = parse_contents(str(document["contents"]))
    else:  # some servers send the fields apart
        title, text = str(document.get("title", "")), str(document["text"])
    return Doc(title, text, optional_url(document.get("url")), optional_score(hit.get("score")))


class RetrieverBackend(HttpBackend):
    name = "retriever"

    def __init__(self, *args: Any, batch_window_ms: float = 5.0, max_batch: int = 64, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.window = batch_window_ms / 1000.0
        self.max_batch = max_batch
        #: Number of POSTs sent (each carries one batch).
        self.batches_sent = 0
        self._pending: dict[int, list[Waiter]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._sending: dict[asyncio.Task[None], list[Waiter]] = {}

    async def search(self, query: str, top_k: int) -> list[Doc]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Doc]] = loop.create_future()
        batch = self._pending.setdefault(top_k, [])
        batch.append((query, future))
        if len(batch) >= self.max_batch:
            self._flush(top_k)
        elif top_k not in self._timers:
            self._timers[top_k] = loop.call_later(self.window, self._flush, top_k)
        return await future

    def _flush(self, top_k: int) -> None:
        timer = self._timers.pop(top_k, None)
        if timer is not None:
            timer.cancel()
        batch = [(q, f) for q, f in self._pending.pop(top_k, []) if not f.done()]  # callers gone: skip
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(top_k, batch))
            self._sending[task] = batch  # held, so the task is not garbage-collected mid-flight
            task.add_done_callback(lambda done: self._sending.pop(done, None))

    async def _send(self, top_k: int, batch: list[Waiter]) -> None:
        self.batches_sent += 1
        logger.debug("retriever: sending %d queries in one call", len(batch))
        try:
            answers = await self._retrieve([q for q, _ in batch], top_k)
        except SearchError as exc:
            _fail(batch, exc)
        except Exception as exc:
            _fail(batch, self._unexpected(exc))
        else:
            for (_, future), docs in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(docs)

    def _unexpected(self, exc: BaseException) -> SearchError:
        if isinstance(exc, KeyError | TypeError | ValueError):
            return self.malformed(f"unexpected hit shape ({type(exc).__name__})")
        logger.exception("retriever: unexpected failure", exc_info=exc)
        return self.malformed(type(exc).__name__)

    async def _retrieve(self, queries: list[str], top_k: int) -> list[list[Doc]]:
        data = await self.request_json(
            "POST", "/retrieve", json={"queries": queries, "topk": top_k, "return_scores": True}
        )
        lists = data.get("result") if isinstance(data, dict) else None
        if not isinstance(lists, list) or len(lists) != len(queries):
            raise self.malformed("'result' does not hold one list per query")
        if not all(isinstance(hits, list) for hits in lists):
            raise self.malformed("a query's hits are not a list")
        return [[parse_hit(hit) for hit in hits[:top_k]] for hits in lists]

    async def aclose(self) -> None:
        closed = SearchError(self.name, "connection", "the backend was closed")
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for batch in self._pending.values():
            _fail(batch, closed)
        self._pending.clear()
        for task, batch in list(self._sending.items()):
            task.cancel()
            _fail(batch, closed)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await super().aclose()


def _fail(batch: list[Waiter], error: SearchError) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
