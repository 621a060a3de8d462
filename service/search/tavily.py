"""Tavily: POST {base}/search with ``Authorization: Bearer KEY``.

Answer: ``{"results": [{"title", "url", "content", "score"}, ...], "answer"?}``.
"""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend


class TavilyBackend(HttpBackend):
    name = "tavily"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        data = await self.request_json(
            "POST",
            "/search",
            json={"query": query, "max_results": top_k, "search_depth": "basic"},
            headers={"Authorization": f"Bearer {self._key or ''}"},
        )
        return self.results_docs(data, top_k)
