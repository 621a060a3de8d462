"""Per-app runtime state, reached by handlers through Annotated dependencies."""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from service.agent.runtime import AgentRuntime
from service.engine.base import Engine, ExportsMetrics
from service.errors import (
    AuthenticationError,
    EngineDeadServiceError,
    RateLimitError,
    ServiceUnavailableError,
)
from service.metrics import ServiceMetrics
from service.settings import Settings


class InFlightLimiter:
    """Admits at most ``limit`` requests at once; the rest are refused, never queued."""

    def __init__(self, limit: int, metrics: ServiceMetrics) -> None:
        self.limit = limit
        self._count = 0
        self._metrics = metrics

    @property
    def count(self) -> int:
        return self._count

    def acquire(self) -> None:
        if self._count >= self.limit:
            self._metrics.rejected.labels("concurrency").inc()
            raise RateLimitError(
                f"too many requests in flight (limit {self.limit}); retry shortly",
                headers={"Retry-After": "1"},
            )
        self._count += 1
        self._metrics.in_flight.set(self._count)

    def release(self) -> None:
        self._count = max(0, self._count - 1)
        self._metrics.in_flight.set(self._count)


@dataclass
class ServiceState:
    settings: Settings
    model_name: str
    metrics: ServiceMetrics
    limiter: InFlightLimiter
    agent: AgentRuntime
    engine: Engine | None = None
    load_error: str | None = None
    loader: asyncio.Task[None] | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def set_engine(self, engine: Engine) -> None:
        self.engine = engine
        self.metrics.bind_engine_gauge(engine.num_unfinished_requests)
        if isinstance(engine, ExportsMetrics):  # vLLM's own vllm:* metrics, beside the ssrl_* ones
            self.metrics.include(engine.metrics_registry)
        self.metrics.engine_ready.set(1)

    async def loaded(self) -> Engine:
        """The engine, once its background load has finished; RuntimeError if the load failed."""
        if self.loader is not None:
            await asyncio.shield(self.loader)
        if self.engine is None:
            raise RuntimeError(f"the engine failed to load: {self.load_error or 'no engine'}")
        return self.engine

    def ready_engine(self) -> Engine:
        if self.engine is None:
            if self.load_error:
                raise ServiceUnavailableError(
                    f"the model failed to load: {self.load_error}", code="model_load_failed"
                )
            raise ServiceUnavailableError(
                "the model is still loading; retry shortly", headers={"Retry-After": "5"}
            )
        if not self.engine.is_healthy():
            raise EngineDeadServiceError()
        return self.engine


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def require_api_key(request: Request, state: State) -> None:
    """Bearer authentication when keys are configured; keys are compared in constant time."""
    keys = state.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError(
            "missing API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    presented = token.strip().encode()
    matched = False
    for key in keys:  # no early exit: every key is compared
        matched |= hmac.compare_digest(presented, key.get_secret_value().encode())
    if not matched:
        raise AuthenticationError("incorrect API key provided")


Authenticated = Depends(require_api_key)
