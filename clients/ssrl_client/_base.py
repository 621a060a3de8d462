"""What both clients share: configuration, request bodies, retries, and turning responses into results."""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import httpx
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from ssrl_client._errors import APIConnectionError, APIStatusError, status_error

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
#: The routing key's header: vllm-router's consistent_hash policy reads it first (before any body field).
SESSION_HEADER = "X-Session-ID"


def session_key(messages: list[dict[str, Any]], model: str) -> str:
    """A routing key for a conversation, derived from its opening: the messages up to and including
    the first user message. Every later request of the same conversation (a next turn, a tool-call
    round, a retry) starts the same way, so it gets the same key and the router sends it to the
    replica that holds its prefix in cache."""
    opening: list[dict[str, Any]] = []
    for message in messages:
        opening.append(message)
        if message.get("role") == "user":
            break
    digest = hashlib.sha256(json.dumps([model, opening], sort_keys=True, default=str).encode())
    return "conv-" + digest.hexdigest()[:32]


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(float(header), 0.0)
    except ValueError:
        try:
            return max(email.utils.parsedate_to_datetime(header).timestamp() - time.time(), 0.0)
        except (TypeError, ValueError):
            return None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, APIConnectionError):
        return True
    return isinstance(exc, APIStatusError) and exc.status_code in RETRY_STATUSES


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    after = getattr(exc, "retry_after", None)
    if after is not None:
        return min(after, MAX_RETRY_AFTER)
    return float(_backoff(state))


_backoff = wait_random_exponential(multiplier=INITIAL_DELAY, max=MAX_DELAY)


HttpClientT = TypeVar("HttpClientT", httpx.Client, httpx.AsyncClient)


class BaseClient(Generic[HttpClientT]):
    """Configuration shared by ``Client`` and ``AsyncClient``.

    ``base_url`` and ``api_key`` default to the environment variables ``SSRL_BASE_URL`` and
    ``SSRL_API_KEY``; the base URL may end with ``/v1`` or not. ``http_client`` may be any httpx
    client of the right kind (for proxies, tests...); one made here is closed with the client.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 2,
        http_client: HttpClientT | None = None,
    ) -> None:
        url = (base_url or os.environ.get("SSRL_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.base_url = url[: -len("/v1")] if url.endswith("/v1") else url
        self.api_key = api_key if api_key is not None else os.environ.get("SSRL_API_KEY")
        self.model = model
        self.timeout = timeout if timeout is not None else DEFAULT_TIMEOUT
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        self._owns_http = http_client is None
        self._http: HttpClientT = http_client if http_client is not None else self._new_http()

    def _new_http(self) -> HttpClientT:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    @staticmethod
    def _session_headers(
        messages: list[dict[str, Any]], model: str, session_id: str | None
    ) -> dict[str, str]:
        return {SESSION_HEADER: session_id or session_key(messages, model)}

    @staticmethod
    def _chat_body(
        messages: list[dict[str, Any]],
        model: str,
        *,
        stream: bool,
        search_mode: str | None,
        search: Mapping[str, Any] | None,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            **{k: v for k, v in params.items() if v is not None},
        }
        if search_mode is not None:
            body["search_mode"] = search_mode
        options = {k: v for k, v in (search or {}).items() if v is not None}
        if options:
            body["search"] = options
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def _search_options(
        backend: str | None, top_k: int | None, max_turns: int | None, threshold: float | None
    ) -> dict[str, Any]:
        return {"backend": backend, "top_k": top_k, "max_turns": max_turns, "threshold": threshold}

    def _retry_policy(self) -> dict[str, Any]:
        """tenacity arguments: retry connection errors and 408/409/429/5xx, honouring Retry-After."""
        return {
            "stop": stop_after_attempt(self.max_retries + 1),
            "wait": _wait,
            "retry": retry_if_exception(_retryable),
            "reraise": True,
        }

    @staticmethod
    def _raise_for_status(response: httpx.Response, body: Any) -> None:
        if response.status_code >= 400:
            error = status_error(response.status_code, body, response.headers.get("x-request-id"), response)
            error.retry_after = _retry_after(response.headers.get("retry-after"))
            raise error

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return response.text


__all__ = ["SESSION_HEADER", "APIStatusError", "BaseClient", "session_key"]
