"""The FastAPI application: ``create_app(settings, engine=None)`` and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.engine.base import Engine
from service.errors import install_error_handlers
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.routes import chat, models, ops
from service.settings import Settings
from service.state import InFlightLimiter, ServiceState

logger = logging.getLogger(__name__)

EngineFactory = Callable[[Settings, str], Awaitable[Engine]]


async def load_vllm_engine(settings: Settings, served_name: str) -> Engine:
    """Prepare the model files (in a thread) and start vLLM's engine in-process."""
    from service.engine.model_files import resolve_model
    from service.engine.vllm import VllmEngine

    model = await asyncio.to_thread(resolve_model, settings.model, settings.cache_dir)
    return await VllmEngine.create(model, served_name, settings.engine)


async def _load(state: ServiceState, factory: EngineFactory, on_failure: Callable[[], None] | None) -> None:
    try:
        state.set_engine(await factory(state.settings, state.model_name))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        state.load_error = f"{type(exc).__name__}: {exc}"
        logger.exception("the engine failed to load")
        if on_failure is not None:
            on_failure()


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    engine_factory: EngineFactory = load_vllm_engine,
    on_load_failure: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the app. With ``engine`` given it serves that; otherwise it loads one in the
    background at start-up, answering 503 until it is ready."""
    metrics = ServiceMetrics()
    state = ServiceState(
        settings=settings,
        model_name=settings.resolved_model_name(),
        metrics=metrics,
        limiter=InFlightLimiter(settings.max_concurrency, metrics),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if engine is not None:
            state.set_engine(engine)
        else:
            state.loader = asyncio.create_task(_load(state, engine_factory, on_load_failure))
        try:
            yield
        finally:
            if state.loader is not None and not state.loader.done():
                state.loader.cancel()
                await asyncio.gather(state.loader, return_exceptions=True)
            if state.engine is not None:
                logger.info("shutting the engine down")
                await state.engine.shutdown()
                logger.info("engine shut down")

    app = FastAPI(title="SSRL inference service", version=__version__, lifespan=lifespan)
    app.state.service = state
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(models.router)
    app.include_router(ops.router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
