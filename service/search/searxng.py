"""SearXNG (self-hosted): GET {base}/search?q=..&format=json.

Answer: ``{"results": [{"title", "url", "content", "engine", "score"}, ...]}``. JSON must be enabled
under ``search.formats`` in its settings.yml, or it answers 403. No key is needed; one given is sent
as a Bearer token (for an instance behind an authenticating proxy).
"""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend


class SearxngBackend(HttpBackend):
    name = "searxng"
    auth_hint = "is format=json enabled under search.formats in its settings.yml (or the key wrong)?"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        data = await self.request_json(
            "GET", "/search", params={"q": query, "format": "json"}, headers=headers
        )
        return self.results_docs(data, top_k, " (is format=json enabled?)")
