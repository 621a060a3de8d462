"""Prometheus metrics of one service instance, in a registry of its own (no global state)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.protocol import Usage

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ServiceMetrics:
    """Counters for requests, latency, tokens and in-flight work."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._included: list[CollectorRegistry] = []
        self.requests = Counter(
            "ssrl_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ssrl_request_duration_seconds",
            "Time from request to last byte sent.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "ssrl_tokens",
            "Tokens processed, by kind (prompt, completion, cached_prompt).",
            ["kind"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ssrl_requests_in_flight",
            "Chat requests admitted and not yet finished.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "ssrl_requests_rejected",
            "Chat requests refused before reaching the engine, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.engine_unfinished = Gauge(
            "ssrl_engine_unfinished_requests",
            "Requests the engine is still generating.",
            registry=self.registry,
        )
        self.search_steps = Counter(
            "ssrl_search_steps",
            "Search actions by mode and by who answered them (self, real, fallback).",
            ["mode", "source"],
            registry=self.registry,
        )
        self.engine_ready = Gauge(
            "ssrl_engine_ready", "1 once the engine is loaded, else 0.", registry=self.registry
        )

    def bind_engine_gauge(self, read: Callable[[], int]) -> None:
        self.engine_unfinished.set_function(read)

    def include(self, registry: CollectorRegistry) -> None:
        """Serve another registry's metrics (the engine's ``vllm:*``) from this one, once."""
        if registry not in self._included:
            self._included.append(registry)
            self.registry.register(registry)

    def record_usage(self, usage: Usage) -> None:
        self.tokens.labels("prompt").inc(usage.prompt_tokens)
        self.tokens.labels("completion").inc(usage.completion_tokens)
        self.tokens.labels("cached_prompt").inc(usage.prompt_tokens_details.cached_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)


_KNOWN_ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/models", "/health", "/metrics", "/version")


def route_label(path: str) -> str:
    for route in _KNOWN_ROUTES:
        if path == route or path.startswith(route + "/"):
            return route
    return "other"


class MetricsMiddleware:
    """Counts every request and times it until its last byte (streams included)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope.get("path", ""))
        status = {"code": 500}
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(route, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
