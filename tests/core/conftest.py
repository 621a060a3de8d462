"""The app with a scripted engine, called in-process through httpx.ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from service.app import create_app
from service.engine.model_files import BASE_MODEL
from service.engine.scripted import ScriptedEngine
from service.settings import Settings
from tests.agent.fakes import FakeBackend

MODEL = "smollm2-135m-instruct"
REPLY = "Paris is the capital of France."


@asynccontextmanager
async def serve(engine: ScriptedEngine | None = None, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    settings.setdefault("cache_dir", Path("/nonexistent-cache"))
    app = create_app(
        Settings(**{"model": BASE_MODEL, **settings}),
        engine=engine or ScriptedEngine(REPLY),
        search={"local": FakeBackend(name="local")},
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            yield client


def chat(content: str = "What is the capital of France?", **extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def assert_error_shape(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]
