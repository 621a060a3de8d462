"""HTTP plumbing shared by the API backends: one call, every failure mapped to a SearchError."""

from __future__ import annotations

import email.utils
import html
import json
import math
import re
import time
from typing import Any

import httpx

from service.search.base import Doc, SearchError

_TAG = re.compile(r"<[^>]+>")


def plain_text(value: object) -> str:
    """A result field as plain text: markup such as Brave's ``<strong>`` removed, entities decoded."""
    if value is None:
        return ""
    return " ".join(html.unescape(_TAG.sub("", str(value))).split())


def optional_url(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def optional_score(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpBackend:
    """Base of the backends that speak HTTP through an injected ``httpx.AsyncClient``."""

    name = "http"
    #: Said with a 401/403 answer.
    auth_hint = "check the API key"

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        timeout: float,
        *,
        api_key: str | None = None,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._key = api_key  # sent in a header by the subclass; never logged
        self._owns_client = owns_client

    def __repr__(self) -> str:  # the key stays out of reprs and tracebacks' locals
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.client.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
            body = await response.aread()
        except httpx.TimeoutException as exc:
            raise SearchError(self.name, "timeout", f"no answer in {self.timeout}s", retryable=True) from exc
        except httpx.TransportError as exc:  # refused, reset, dropped mid-response
            raise SearchError(self.name, "connection", type(exc).__name__, retryable=True) from exc
        status = response.status_code
        if status in (401, 403):
            raise SearchError(self.name, "auth", f"HTTP {status}: {self.auth_hint}")
        if status == 429:
            raise SearchError(
                self.name,
                "rate_limited",
                "HTTP 429",
                retryable=True,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        if status >= 500 or status == 408:
            raise SearchError(
                self.name,
                "http_status",
                f"HTTP {status}",
                retryable=True,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        if status >= 400:
            raise SearchError(self.name, "http_status", f"HTTP {status}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise SearchError(self.name, "bad_response", "the answer is not JSON") from exc

    def results_docs(self, data: Any, top_k: int, hint: str = "") -> list[Doc]:
        """Docs of a ``{"results": [{"title", "content", "url", "score"}]}`` answer (Tavily, SearXNG)."""
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise self.malformed("no 'results' list" + hint)
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

    def malformed(self, what: str) -> SearchError:
        return SearchError(self.name, "bad_response", what)

    async def aclose(self) -> None:
        """An injected client belongs to whoever injected it; one made for this backend is closed."""
        if self._owns_client:
            await self.client.aclose()
