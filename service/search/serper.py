"""Serper (Google search), the engine of the SSRL paper: POST /search with X-API-KEY."""

from __future__ import annotations

from service.search.base import Doc
from service.search.http import HttpBackend


class SerperBackend(HttpBackend):
    name = "serper"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        data = await self.request_json(
            "POST", "/search", json={"q": query, "num": top_k}, headers={"X-API-KEY": self._key}
        )
        organic = data.get("organic", []) if isinstance(data, dict) else None
        if not isinstance(organic, list):
            raise self.malformed("no 'organic' list")
        return [
            Doc(
                title=str(r.get("title", "")),
                text=str(r.get("snippet", "")),
                url=r.get("link"),
                score=1.0 / float(r["position"])
                if isinstance(r.get("position"), int | float) and r["position"]
                else None,
            )
            for r in organic[:top_k]
            if isinstance(r, dict)
        ]
