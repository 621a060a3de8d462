"""Fixtures: the app built around a ScriptedEngine and called in-process through httpx."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.engine.model_files import BASE_MODEL
from service.engine.scripted import ScriptedEngine
from service.search.base import Doc
from service.settings import Settings


class StubSearch:
    """Stands in for the default 'local' backend so start-up never builds the BM25 index."""

    name = "local"

    async def search(self, query: str, top_k: int) -> list[Doc]:
        return [Doc("stub", f"about {query}")][:top_k]

    async def aclose(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_ssrl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SSRL_* variables; the host's must not leak into the tests."""
    for name in list(os.environ):
        if name.upper().startswith("SSRL_"):
            monkeypatch.delenv(name)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (which attaches or loads the engine) around an in-process client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield client


def build_app(settings: Settings | None = None, **create_kwargs: Any) -> FastAPI:
    """``create_app`` with a stub 'local' search backend (no index is built in unit tests)."""
    create_kwargs.setdefault("search", {"local": StubSearch()})
    return create_app(settings or Settings(model=BASE_MODEL), **create_kwargs)


Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serve() -> Serve:
    """``async with serve(engine, **settings) as client``: an app serving ``engine``."""

    def _serve(
        engine: ScriptedEngine | None = None, **settings: Any
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return running(
            build_app(Settings(**{"model": BASE_MODEL, **settings}), engine=engine or ScriptedEngine())
        )

    return _serve


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
async def client(engine: ScriptedEngine, serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app with default settings serving the ``engine`` fixture."""
    async with serve(engine) as c:
        yield c
