"""Bearer authentication of the API routes; the operational routes stay open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.engine.scripted import ScriptedEngine
from tests.conftest import Serve
from tests.helpers import SCRIPTED_TEXT, assert_error, chat

URL = "/v1/chat/completions"


@pytest.fixture
async def keyed(serve: Serve) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(ScriptedEngine(), api_keys=["k1", "k2"]) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_missing_key_is_401(keyed: httpx.AsyncClient) -> None:
    r = await keyed.post(URL, json=chat())
    assert_error(r, 401, code="missing_api_key", type_="invalid_request_error")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer k3",
        "Bearer k1x",
        "Bearer K1",
        "Bearer ",
        "Bearer",
        "k1",
        "Basic k1",
        "Basic azE6azE=",
        "Token k1",
    ],
)
async def test_wrong_credentials_are_401(keyed: httpx.AsyncClient, header: str) -> None:
    r = await keyed.post(URL, json=chat(), headers={"Authorization": header})
    error = assert_error(r, 401)
    assert error["code"] in {"invalid_api_key", "missing_api_key"}
    assert "k1" not in error["message"] and "k2" not in error["message"]


@pytest.mark.parametrize("key", ["k1", "k2"])
async def test_every_configured_key_works(keyed: httpx.AsyncClient, key: str) -> None:
    r = await keyed.post(URL, json=chat(), headers=bearer(key))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == SCRIPTED_TEXT
    models = await keyed.get("/v1/models", headers=bearer(key))
    assert models.status_code == 200


async def test_scheme_is_case_insensitive(keyed: httpx.AsyncClient) -> None:
    r = await keyed.post(URL, json=chat(), headers={"Authorization": "bearer k2"})
    assert r.status_code == 200, r.text


async def test_model_routes_need_a_key(keyed: httpx.AsyncClient) -> None:
    assert_error(await keyed.get("/v1/models"), 401)
    assert_error(await keyed.get("/v1/models/smollm2-135m-instruct"), 401)


async def test_auth_is_checked_before_the_body(keyed: httpx.AsyncClient) -> None:
    r = await keyed.post(URL, content=b"not json", headers={"content-type": "application/json"})
    assert_error(r, 401)


@pytest.mark.parametrize("path", ["/health", "/metrics", "/version"])
async def test_operational_routes_need_no_key(keyed: httpx.AsyncClient, path: str) -> None:
    r = await keyed.get(path)
    assert r.status_code == 200, r.text


async def test_no_keys_configured_needs_no_header(client: httpx.AsyncClient) -> None:
    assert (await client.post(URL, json=chat())).status_code == 200
    # any header is ignored when no keys are configured
    assert (await client.post(URL, json=chat(), headers=bearer("whatever"))).status_code == 200
    assert (await client.get("/v1/models")).status_code == 200
