"""Serper (Google search), the engine of the SSRL paper: POST {base}/search with X-API-KEY.

Answer: ``{"organic": [{"title", "link", "snippet", "position"}, ...], "answerBox"?, "knowledgeGraph"?}``.
"""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend, optional_score, optional_url, plain_text


class SerperBackend(HttpBackend):
    name = "serper"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        data = await self.request_json(
            "POST", "/search", json={"q": query, "num": top_k}, headers={"X-API-KEY": self._key or ""}
        )
        if not isinstance(data, dict):
            raise self.malformed("not a JSON object")
        organic = data.get("organic", [])
        if not isinstance(organic, list):
            raise self.malformed("'organic' is not a list")
        docs = []
        for hit in organic:
            if not isinstance(hit, dict):
                continue
            position = optional_score(hit.get("position"))
            docs.append(
                Doc(
                    title=plain_text(hit.get("title")),
                    text=plain_text(hit.get("snippet")),
                    url=optional_url(hit.get("link")),
                    score=1.0 / position if position and position > 0 else None,
                )
            )
        return docs[:top_k]
