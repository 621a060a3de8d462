"""Start-up with an engine that loads in the background, load failures, health and shutdown."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.engine.base import Engine
from service.engine.model_files import BASE_MODEL
from service.engine.scripted import ScriptedEngine
from service.settings import Settings
from tests.conftest import build_app, running
from tests.helpers import MODEL, SCRIPTED_TEXT, assert_error, chat, wait_until

URL = "/v1/chat/completions"


async def health_is(client: httpx.AsyncClient, status: int) -> bool:
    return (await client.get("/health")).status_code == status


async def test_503_while_loading_then_200() -> None:
    ready = asyncio.Event()
    engine = ScriptedEngine()
    seen: list[tuple[Settings, str]] = []

    async def factory(settings: Settings, served_name: str) -> Engine:
        seen.append((settings, served_name))
        await ready.wait()
        return engine

    app = build_app(Settings(model=BASE_MODEL, max_n=3), engine_factory=factory)
    async with running(app) as client:
        for _ in range(3):  # however long it takes
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json() == {"status": "loading", "model": MODEL}
            assert health.headers["retry-after"] == "5"

            loading = await client.post(URL, json=chat())
            assert_error(loading, 503, code="model_loading", type_="server_error")
            assert loading.headers["retry-after"] == "5"
            await asyncio.sleep(0.01)
        models = (await client.get("/v1/models")).json()
        assert models["data"][0]["max_model_len"] is None
        assert "ssrl_engine_ready 0.0" in (await client.get("/metrics")).text

        ready.set()
        await wait_until(lambda: health_is(client, 200))
        health = await client.get("/health")
        ok = await client.post(URL, json=chat())
        metrics = (await client.get("/metrics")).text
    assert health.json() == {"status": "ok", "model": MODEL}
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == SCRIPTED_TEXT
    assert "ssrl_engine_ready 1.0" in metrics
    assert [(s.max_n, name) for s, name in seen] == [(3, MODEL)]
    assert engine.shut_down


async def test_load_failure_reports_failed_and_calls_back() -> None:
    failures: list[bool] = []

    async def factory(settings: Settings, served_name: str) -> Engine:
        await asyncio.sleep(0)
        raise RuntimeError("weights are missing")

    app = build_app(engine_factory=factory, on_load_failure=lambda: failures.append(True))
    async with running(app) as client:
        await wait_until(lambda: bool(failures))
        health = await client.get("/health")
        refused = await client.post(URL, json=chat())
    assert failures == [True]
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "failed" and body["model"] == MODEL
    assert "RuntimeError: weights are missing" in body["error"]
    error = assert_error(refused, 503, code="model_load_failed", type_="server_error")
    assert "weights are missing" in error["message"]


async def test_shutdown_while_loading_cancels_the_load() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()
    failures: list[bool] = []

    async def factory(settings: Settings, served_name: str) -> Engine:
        started.set()
        try:
            await asyncio.Event().wait()  # never finishes
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    app = build_app(engine_factory=factory, on_load_failure=lambda: failures.append(True))
    async with running(app) as client:
        await asyncio.wait_for(started.wait(), 5)
        assert (await client.get("/health")).status_code == 503
    assert cancelled.is_set()
    assert failures == []  # a cancelled load is not a failure


async def test_unhealthy_engine_fails_health(engine: ScriptedEngine) -> None:
    async with running(build_app(engine=engine)) as client:
        assert (await client.get("/health")).json() == {"status": "ok", "model": MODEL}
        engine.healthy = False
        health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"


async def test_given_engine_is_shut_down_with_the_app(engine: ScriptedEngine) -> None:
    async with running(build_app(engine=engine)) as client:
        assert (await client.get("/health")).status_code == 200
        assert not engine.shut_down
    assert engine.shut_down


async def test_in_process_can_wait_for_the_engine_or_say_why_it_failed() -> None:
    """service.app.in_process, as ssrl-eval starts the service: the client comes once the engine is
    loaded, or the load's failure is raised."""
    from service.app import in_process

    async def slow(settings: Settings, served_name: str) -> Engine:
        await asyncio.sleep(0.2)
        return ScriptedEngine()

    async def broken(settings: Settings, served_name: str) -> Engine:
        raise OSError("no weights here")

    async with in_process(build_app(engine_factory=slow), wait_for_engine=True) as client:
        assert (await client.get("/health")).status_code == 200  # no 503 first
        assert str(client.base_url) == "http://in-process"
    with pytest.raises(RuntimeError, match="OSError: no weights here"):
        async with in_process(build_app(engine_factory=broken), wait_for_engine=True):
            pass
