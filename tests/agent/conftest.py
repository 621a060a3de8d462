"""An app with a scripted engine and a fake search backend, called in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx

from service.app import create_app
from service.engine.model_files import BASE_MODEL
from service.engine.scripted import ScriptedEngine
from service.settings import Settings
from tests.agent.fakes import FakeBackend

MODEL = "smollm2-135m-instruct"


@asynccontextmanager
async def serve(
    engine: ScriptedEngine, backend: FakeBackend | None = None, **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    backend = backend or FakeBackend(name="local")
    app = create_app(
        Settings(**{"model": BASE_MODEL, **settings}), engine=engine, search={backend.name: backend}
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield client


def ask(question: str = "What is the capital of France?", **extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], **extra}


def sse_events(body: str) -> list[str]:
    events = [block for block in body.split("\n\n") if block]
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: ") :] for e in events]


Factory = Callable[..., object]
