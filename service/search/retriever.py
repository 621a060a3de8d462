"""The Search-R1 retrieval server API: POST /retrieve, with concurrent queries batched into one call."""

from __future__ import annotations

import asyncio
from typing import Any

from service.search.base import Doc, SearchError
from service.search.corpus import parse_contents
from service.search.http import HttpBackend


def parse_hit(hit: Any) -> Doc:
    """One hit, with scores ({"document": {...}, "score"}) or without ({"id", "contents"})."""
    if not isinstance(hit, dict):
        raise ValueError("hit is not an object")
    document = hit.get("document", hit)
    title, text = parse_contents(str(document["contents"]))
    score = hit.get("score")
    return Doc(title, text, None, float(score) if isinstance(score, int | float) else None)


class RetrieverBackend(HttpBackend):
    name = "retriever"

    def __init__(self, *args: Any, batch_window_ms: float = 5.0, max_batch: int = 64, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.window = batch_window_ms / 1000.0
        self.max_batch = max_batch
        self._pending: dict[int, list[tuple[str, asyncio.Future[list[Doc]]]]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}

    async def search(self, query: str, top_k: int) -> list[Doc]:
        future: asyncio.Future[list[Doc]] = asyncio.get_running_loop().create_future()
        batch = self._pending.setdefault(top_k, [])
        batch.append((query, future))
        if len(batch) >= self.max_batch:
            self._flush(top_k)
        elif top_k not in self._timers:
            self._timers[top_k] = asyncio.get_running_loop().call_later(self.window, self._flush, top_k)
        return await future

    def _flush(self, top_k: int) -> None:
        timer = self._timers.pop(top_k, None)
        if timer is not None:
            timer.cancel()
        batch = self._pending.pop(top_k, [])
        if batch:
            asyncio.ensure_future(self._send(top_k, batch))

    async def _send(self, top_k: int, batch: list[tuple[str, asyncio.Future[list[Doc]]]]) -> None:
        try:
            data = await self.request_json(
                "POST",
                "/retrieve",
                json={"queries": [q for q, _ in batch], "topk": top_k, "return_scores": True},
            )
            lists = data.get("result") if isinstance(data, dict) else None
            if not isinstance(lists, list) or len(lists) != len(batch):
                raise self.malformed("'result' does not hold one list per query")
            answers = [[parse_hit(h) for h in hits[:top_k]] for hits in lists]
        except SearchError as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except (KeyError, TypeError, ValueError) as exc:
            error = self.malformed(f"unexpected hit shape ({type(exc).__name__})")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), docs in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(docs)
