"""Session affinity: the routing key of a conversation or trajectory, and where it pins work.

In front of several replicas, vllm-router (``--policy consistent_hash``) sends every request carrying
the same ``X-Session-ID`` header to the same replica, so a conversation's later turns find their
prefix in that replica's cache (the SDK sets the header per conversation). The service itself only
reads the key for one thing: with vLLM data parallelism inside one replica
(``engine.data_parallel_size`` > 1), the same key picks the same data-parallel rank, so the prefix
cache of that rank serves the continuation.

The key travels from the HTTP request to the engine call in a context variable, set per request by
``SessionKeyMiddleware``: each request (and each task it starts) sees its own value, and none is
left behind after it. The service never requires or validates the key; a request without one is
served the same way.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

#: The header vllm-router's consistent_hash policy reads first (measured with vllm-router 0.1.17).
SESSION_HEADER = "x-session-id"
_MAX_KEY = 256

_session_key: ContextVar[str | None] = ContextVar("ssrl_session_key", default=None)


def current_session_key() -> str | None:
    """The routing key of the request being served, if it sent one."""
    return _session_key.get()


def data_parallel_rank(key: str | None, size: int) -> int | None:
    """The data-parallel rank a session is pinned to: stable for a key, spread over ranks; None
    (vLLM balances by load) without a key or without data parallelism."""
    if not key or size <= 1:
        return None
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size


class SessionKeyMiddleware:
    """Makes the request's ``X-Session-ID`` available to the engine call as ``current_session_key()``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = None
        for name, value in scope.get("headers", ()):
            if name == SESSION_HEADER.encode():
                key = value.decode("latin-1").strip()[:_MAX_KEY] or None
                break
        token = _session_key.set(key)
        try:
            await self.app(scope, receive, send)
        finally:
            _session_key.reset(token)
