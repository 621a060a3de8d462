"""SearXNG (self-hosted): GET {base}/search?q=..&format=json.

Answer: ``{"results": [{"title", "url", "content", "engine", "score"}, ...]}``. JSON must be enabled
under ``search.formats`` in its settings.yml, or it answers 403. No key is needed; one given is sent
as a Bearer token (for an instance behind an authenticating proxy).
"""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend, optional_score, optional_url, plain_text


class SearxngBackend(HttpBackend):
    name = "searxng"
    auth_hint = "is format=json enabled under search.formats in its settings.yml (or the key wrong)?"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        data = await self.request_json(
            "GET", "/search", params={"q": query, "format": "json"}, headers=headers
        )
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise self.malformed("no 'results' list (is format=json enabled?)")
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
