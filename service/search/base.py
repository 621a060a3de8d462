"""The search-backend interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

SearchFailure = Literal["timeout", "connection", "http_status", "rate_limited", "auth", "bad_response"]


@dataclass(frozen=True)
class Doc:
    """One search result."""

    title: str
    text: str
    url: str | None = None
    score: float | None = None


class SearchError(Exception):
    """A backend could not answer. ``kind`` says why; the message never contains API keys."""

    def __init__(
        self,
        backend: str,
        kind: SearchFailure,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{backend}: {kind}: {message}")
        self.backend = backend
        self.kind = kind
        #: Worth trying again (timeouts, dropped connections, 429 and 5xx answers).
        self.retryable = retryable
        #: Seconds the server asked us to wait (Retry-After), if it said.
        self.retry_after = retry_after


@runtime_checkable
class SearchBackend(Protocol):
    """A search engine the agent loop can call."""

    name: str

    async def search(self, query: str, top_k: int) -> list[Doc]:
        """Up to ``top_k`` results for ``query``, best first. Raises SearchError on failure."""

    async def aclose(self) -> None:
        """Release connections and files."""


@runtime_checkable
class CachingBackend(Protocol):
    """A backend that keeps results (the resilience layer's cache): the loop asks it first, so a step
    can say its results came from the cache rather than the search engine."""

    def cached(self, query: str, top_k: int) -> list[Doc] | None:
        """The results a previous call left in the cache, without calling the backend; None if none."""
