"""Tavily: POST {base}/search with ``Authorization: Bearer KEY``.

Answer: ``{"results": [{"title", "url", "content", "score"}, ...], "answer"?}``.
"""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend, optional_score, optional_url, plain_text


class TavilyBackend(HttpBackend):
    name = "tavily"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        data = await self.request_json(
            "POST",
            "/search",
            json={"query": query, "max_results": top_k, "search_depth": "basic"},
            headers={"Authorization": f"Bearer {self._key or ''}"},
        )
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise self.malformed("no 'results' list")
        return [
            Doc(
                plain_text(r.get("title")),
                plain_text(r.get("content")),
                optional_url(r.get("url")),
                optional_score(r.get("score")),
            )
            for r in results
            if isinstance(r, dict)
        ][:top_k]
