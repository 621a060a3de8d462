"""Bad input: schemathesis fuzzes the OpenAPI schema; hand-written cases go where it does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.engine.model_files import BASE_MODEL
from service.engine.scripted import ScriptedEngine
from service.settings import Settings
from tests.conftest import build_app, running

ENGINE = ScriptedEngine("<search> q </search><information> x </information><answer> a </answer>")
APP = build_app(
    Settings(model=BASE_MODEL, cache_dir=Path("/nonexistent"), max_body_bytes=256 * 1024), engine=ENGINE
)
APP.state.service.set_engine(ENGINE)  # what the lifespan does; schemathesis calls the app without it
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)


@SCHEMA.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_server_error(case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.body, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}


@pytest.fixture
async def client():
    engine = ScriptedEngine("fine")
    app = build_app(Settings(model=BASE_MODEL, cache_dir=Path("/nonexistent"), max_n=4), engine=engine)
    async with running(app, timeout=10) as http:
        yield http


def body(**extra: object) -> dict:
    return {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}], **extra}


HAND_WRITTEN = [
    ("10k messages", json.dumps(body(messages=[{"role": "user", "content": "hi"}] * 10_000)).encode()),
    ("huge max_tokens", json.dumps(body(max_tokens=2**62)).encode()),
    ("negative max_tokens", json.dumps(body(max_tokens=-1)).encode()),
    ("n beyond the limit", json.dumps(body(n=5)).encode()),
    ("n huge", json.dumps(body(n=10**9)).encode()),
    (
        "control characters",
        json.dumps(body(messages=[{"role": "user", "content": "\x00\x01\x1b[31m\u2028"}])).encode(),
    ),
    (
        "invalid UTF-8",
        b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "\xc3\x28"}]}',
    ),
    (
        "lone surrogate",
        b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "\\udfff"}]}',
    ),
    ("deep JSON", b'{"model": "m", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
    ("number as model", json.dumps(body(model=7)).encode()),
    ("search as a list", json.dumps(body(search_mode="real", search=[1])).encode()),
    ("empty body", b""),
    ("just null", b"null"),
    (
        "huge body",
        b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * (5 * 1024 * 1024) + b'"}]}',
    ),
]


@pytest.mark.parametrize(("name", "raw"), HAND_WRITTEN, ids=[n for n, _ in HAND_WRITTEN])
async def test_hand_written_bad_inputs(client, name: str, raw: bytes) -> None:
    response = await client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, response.text
    if name in ("huge body",):
        assert response.status_code == 413
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
