"""The FastAPI application: ``create_app(settings, engine=None)`` and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.agent.backends import BackendPool
from service.agent.runtime import AgentRuntime
from service.engine.base import Engine
from service.errors import install_error_handlers
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.routes import chat, completions, models, ops, playground, responses
from service.search.base import SearchBackend
from service.search.metrics import SearchMetrics
from service.search.registry import backend_names, create_search_backend
from service.settings import Settings
from service.state import InFlightLimiter, ServiceState

logger = logging.getLogger(__name__)

EngineFactory = Callable[[Settings, str], Awaitable[Engine]]

#: How often the engine's liveness is checked once it is serving (seconds).
ENGINE_WATCH_INTERVAL = 1.0


async def load_vllm_engine(settings: Settings, served_name: str) -> Engine:
    """Prepare the model files (in a thread) and start vLLM's engine in-process."""
    from service.engine.model_files import resolve_model
    from service.engine.vllm import VllmEngine

    model = await asyncio.to_thread(resolve_model, settings.model, settings.cache_dir)
    agent_traffic = settings.default_search_mode() != "off"  # resolves engine.speculation=auto
    return await VllmEngine.create(model, served_name, settings.engine, agent_traffic=agent_traffic)


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


async def _watch_engine(state: ServiceState, on_death: Callable[[], None] | None) -> None:
    """Once the engine has died (its process exited), say so in the metrics and call ``on_death``:
    ``ssrl-serve`` then exits non-zero for its supervisor to restart it. Requests already in flight
    fail with a 503 on their own (the engine raises); new ones are refused with a 503."""
    while state.engine is None or state.engine.is_healthy():
        await asyncio.sleep(ENGINE_WATCH_INTERVAL)
    logger.error("the engine has died; the service stops so that its supervisor restarts it")
    state.metrics.engine_ready.set(0)
    if on_death is not None:
        on_death()


def _backend_pool(
    settings: Settings,
    metrics: ServiceMetrics,
    client: httpx.AsyncClient,
    search: Mapping[str, SearchBackend] | None,
) -> BackendPool:
    search_metrics = SearchMetrics(metrics.registry)

    async def factory(name: str) -> SearchBackend:
        return await create_search_backend(
            settings.search, name=name, metrics=search_metrics, client=client, cache_dir=settings.cache_dir
        )

    return BackendPool(backend_names(), factory, search)


@asynccontextmanager
async def in_process(
    app: FastAPI,
    *,
    base_url: str = "http://in-process",
    timeout: float | None = 30,
    wait_for_engine: bool = False,
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (which attaches or loads the engine) around an httpx client that calls
    it in-process; with ``wait_for_engine``, hand the client over only once the engine has loaded
    (a load that failed raises). The test harness and ``ssrl-eval`` both start the service this way."""
    async with app.router.lifespan_context(app):
        if wait_for_engine:
            await app.state.service.loaded()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=timeout) as client:
            yield client


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    engine_factory: EngineFactory = load_vllm_engine,
    search: Mapping[str, SearchBackend] | None = None,
    http_client: httpx.AsyncClient | None = None,
    on_load_failure: Callable[[], None] | None = None,
    on_engine_death: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the app. With ``engine`` given it serves that; otherwise it loads one in the
    background at start-up, answering 503 until it is ready. ``search`` replaces backends by name;
    the others are created on first use, speaking HTTP through ``http_client``. ``on_engine_death``
    is called once if the engine dies while serving."""
    metrics = ServiceMetrics()
    client = http_client or httpx.AsyncClient(follow_redirects=True)
    pool = _backend_pool(settings, metrics, client, search)
    model_name = settings.resolved_model_name()
    state = ServiceState(
        settings=settings,
        model_name=model_name,
        metrics=metrics,
        limiter=InFlightLimiter(settings.max_concurrency, metrics),
        agent=AgentRuntime(settings, model_name, pool),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if engine is not None:
            state.set_engine(engine)
        else:
            state.loader = asyncio.create_task(_load(state, engine_factory, on_load_failure))
        warming = asyncio.create_task(pool.warm(settings.search.backend))
        watchdog = asyncio.create_task(_watch_engine(state, on_engine_death))
        try:
            yield
        finally:
            watchdog.cancel()
            warming.cancel()
            await pool.aclose()
            if http_client is None:
                await client.aclose()
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
    app.include_router(completions.router)
    app.include_router(responses.router)
    app.include_router(models.router)
    app.include_router(ops.router)
    app.include_router(playground.router)
    if settings.cors_origins:  # off unless origins are configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
