"""Brave Search: GET /res/v1/web/search with X-Subscription-Token."""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend


class BraveBackend(HttpBackend):
    name = "brave"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        data = await self.request_json(
            "GET",
            "/res/v1/web/search",
            params={"q": query, "count": top_k},
            headers={"X-Subscription-Token": self._key, "Accept": "application/json"},
        )
        if not isinstance(data, dict):
            raise self.malformed("not a JSON object")
        web = data.get("web") or {}
        results = web.get("results", []) if isinstance(web, dict) else None
        if not isinstance(results, list):
            raise self.malformed("no 'web.results' list")
        return [
            Doc(str(r.get("title", "")), str(r.get("description", "")), r.get("url"))
            for r in results[:top_k]
            if isinstance(r, dict)
        ]
