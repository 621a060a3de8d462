"""Session affinity: the routing key of a conversation or trajectory, read from the request.

In front of several replicas, vllm-router (``--policy consistent_hash``) sends every request carrying
the same ``X-Session-ID`` header to the same replica, so a conversation's later turns find their
prefix in that replica's cache (the SDK sets the header per conversation). The service itself only
reads the key for one thing: with vLLM data parallelism inside one replica
(``engine.data_parallel_size`` > 1), the same key picks the same data-parallel rank, so the prefix
cache of that rank serves the continuation.

The routes read the key here and hand it down with the prepared request to every engine call
(``Engine.generate(..., session_key=...)``; the rank is ``engine/vllm.py``'s ``data_parallel_rank``).
The service never requires or validates the key; a request without one is served the same way.
"""

from __future__ import annotations

from starlette.requests import Request

#: The header vllm-router's consistent_hash policy reads first (measured with vllm-router 0.1.17).
SESSION_HEADER = "x-session-id"
_MAX_KEY = 256


def session_key(request: Request) -> str | None:
    """The request's routing key (its ``X-Session-ID``, trimmed and cut to 256 characters), if any."""
    value = request.headers.get(SESSION_HEADER, "")
    return value.strip()[:_MAX_KEY] or None
