"""Brave Search: GET {base}/res/v1/web/search?q=..&count=k with ``X-Subscription-Token``.

Answer: ``{"web": {"results": [{"title", "url", "description"}, ...]}}``; "web" is absent when nothing
was found. Descriptions carry ``<strong>`` markup, removed here.
"""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend, optional_url, plain_text

#: The most results Brave returns per call.
MAX_COUNT = 20


class BraveBackend(HttpBackend):
    name = "brave"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        data = await self.request_json(
            "GET",
            "/res/v1/web/search",
            params={"q": query, "count": min(top_k, MAX_COUNT)},
            headers={"X-Subscription-Token": self._key or "", "Accept": "application/json"},
        )
        if not isinstance(data, dict):
            raise self.malformed("not a JSON object")
        web = data.get("web") or {}
        results = web.get("results", []) if isinstance(web, dict) else None
        if not isinstance(results, list):
            raise self.malformed("no 'web.results' list")
        return [
            Doc(plain_text(r.get("title")), plain_text(r.get("description")), optional_url(r.get("url")))
            for r in results
            if isinstance(r, dict)
        ][:top_k]
