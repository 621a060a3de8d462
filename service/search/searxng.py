"""SearXNG (self-hosted): GET /search?format=json (JSON must be enabled in its settings.yml)."""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend


class SearxngBackend(HttpBackend):
    name = "searxng"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        data = await self.request_json(
            "GET", "/search", params={"q": query, "format": "json"}, headers=headers
        )
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise self.malformed("no 'results' list (is format=json enabled?)")
        return [
            Doc(str(r.get("title", "")), str(r.get("content", "")), r.get("url"), r.get("score"))
            for r in results[:top_k]
            if isinstance(r, dict)
        ]
