"""A search backend that cannot run here is one error, a 400 in OpenAI's shape, raised by the registry
itself and passed through the pool unchanged."""

from __future__ import annotations

import pytest

from service.agent.backends import BackendPool
from service.engine.scripted import ScriptedEngine
from service.errors import BackendUnavailableError, InvalidRequestError
from tests.conftest import serve
from tests.helpers import ask


async def test_a_backend_without_its_key_is_a_400_each_time() -> None:
    async with serve(ScriptedEngine(["<search> q </search>", "<answer> A </answer>"])) as client:
        for _ in range(2):  # a failed creation is not remembered
            r = await client.post(
                "/v1/chat/completions", json=ask(search_mode="real", search={"backend": "serper"})
            )
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["code"] == "backend_unavailable" and error["param"] == "search.backend"
            assert error["type"] == "invalid_request_error"
            assert "SSRL_SEARCH__SERPER__API_KEY" in error["message"]


async def test_the_pool_passes_the_registry_error_through() -> None:
    async def factory(name: str) -> object:
        raise BackendUnavailableError(f"search backend '{name}' needs: pip install x")

    pool = BackendPool(["local"], factory)  # type: ignore[arg-type]
    with pytest.raises(BackendUnavailableError) as caught:
        await pool.get("local")
    assert isinstance(caught.value, InvalidRequestError) and caught.value.status_code == 400
    no_factory = BackendPool(["local"])
    with pytest.raises(BackendUnavailableError, match="not configured"):
        await no_factory.get("local")
