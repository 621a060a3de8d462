"""The one test harness: the app built around a given engine and search backend, run with its
lifespan and called in-process through httpx.ASGITransport.

``async with serve(engine, backend, **settings) as client`` (importable, and the ``serve`` fixture);
``build_app``/``running`` for tests that need the app itself (engine factories, load failures).

End-to-end tests (those that load the real model: the real server on the real vLLM engine, the
benchmarks' runs against it, the ssrl-train smoke run) are marked one way only, with the ``e2e``
marker: ``pytestmark = pytest.mark.e2e`` for a module that is all e2e (every module in tests/e2e/,
which tests/test_markers.py checks), ``@pytest.mark.e2e`` on a single test otherwise. Nothing is
marked by its path or file name. ``-m "not e2e"`` is the fast suite.
"""

from __future__ import annotations

import os
import shutil

# Every server the tests start (vLLM's CPU engine, the trainer) shares 2 cores with the test process
# and with each other: OpenMP threads that spin while they wait (libgomp's default) take the cores
# the other processes need. Passive waiting, inherited by every subprocess; a setting the caller
# made is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app, in_process
from service.engine.base import Engine
from service.engine.scripted import ScriptedEngine
from service.search.base import SearchBackend
from service.settings import Settings
from tests.fakes import FakeBackend
from tests.helpers import MODEL

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def worker_core(worker: str | None, cpus: int) -> str | None:
    """The core a pytest-xdist worker (``gw0``, ``gw1``, ...) binds its vLLM CPU engines to: vLLM
    binds every engine to core 0 by default (the other core serves its front end), so two workers'
    engines would share one core and crawl; one core each runs both at about full speed."""
    if worker is None or not worker.startswith("gw") or cpus < 2:
        return None
    return str(int(worker[2:]) % cpus)


_core = worker_core(os.environ.get("PYTEST_XDIST_WORKER"), os.cpu_count() or 1)
if _core is not None:
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", _core)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core, at most two (each may hold three servers of about 3.6 GB:
    the session's, and a module's two router replicas); one on a GPU host, where the servers share
    one GPU's memory."""
    if shutil.which("nvidia-smi"):
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The modules that load the real model first (a stable sort: each module's tests stay together
    and in order), so that the two workers start on the long ones and the fast ones fill the end;
    pyproject's --no-loadscope-reorder keeps this order (xdist's own puts the modules of many tests
    first, which left single 2-7 minute e2e modules for the end)."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


def build_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    backend: SearchBackend | None = None,
    **create_kwargs: Any,
) -> FastAPI:
    """``create_app`` serving the plain base model, with ``backend`` (default: a fake 'local', so no
    index is ever built) in place of the backend of its name."""
    backend = backend or FakeBackend(name="local")
    create_kwargs.setdefault("search", {backend.name: backend})
    return create_app(settings or Settings(model=MODEL), engine=engine, **create_kwargs)


def running(app: FastAPI, *, timeout: float = 30) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """Run the app's lifespan (which attaches or loads the engine) around an in-process client
    (``service.app.in_process``, the same start ``ssrl-eval`` uses)."""
    return in_process(app, base_url="http://test", timeout=timeout)


def serve(
    engine: Engine | None = None, backend: SearchBackend | None = None, **settings: Any
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client of an app serving ``engine`` (default: a ScriptedEngine) with ``backend`` and
    ``settings`` (the plain base model unless ``model`` is given)."""
    app = build_app(
        Settings(**{"model": MODEL, **settings}), engine=engine or ScriptedEngine(), backend=backend
    )
    return running(app)


@pytest.fixture(name="serve")
def serve_fixture() -> Serve:
    """``async with serve(engine, backend, **settings) as client``."""
    return serve


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
async def client(engine: ScriptedEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app with default settings serving the ``engine`` fixture."""
    async with serve(engine) as c:
        yield c
