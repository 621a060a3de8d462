"""Tavily: POST /search with a Bearer key."""

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
            headers={"Authorization": f"Bearer {self._key}"},
        )
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise self.malformed("no 'results' list")
        return [
            Doc(str(r.get("title", "")), str(r.get("content", "")), r.get("url"), r.get("score"))
            for r in results[:top_k]
            if isinstance(r, dict)
        ]
