from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from service.search.metrics import SearchMetrics
from service.search.registry import (
    BackendNotReadyError,
    UnknownBackendError,
    backend_names,
    create_search_backend,
)
from service.search.resilient import ResilientBackend
from service.search.settings import SearchSettings
from service.settings import Settings


def test_known_names() -> None:
    assert set(backend_names()) == {"local", "retriever", "serper", "tavily", "brave", "searxng"}


async def test_unknown_name_lists_the_known_ones(metrics: SearchMetrics) -> None:
    with pytest.raises(UnknownBackendError) as caught:
        await create_search_backend(
            "bing", SearchSettings(), metrics=metrics, client=httpx.AsyncClient(), cache_dir=Path("/tmp")
        )
    for name in backend_names():
        assert name in str(caught.value)


async def test_a_key_backend_without_a_key_says_which_variable_to_set(metrics: SearchMetrics) -> None:
    with pytest.raises(BackendNotReadyError, match="SSRL_SEARCH__SERPER__API_KEY"):
        await create_search_backend(
            "serper", SearchSettings(), metrics=metrics, client=httpx.AsyncClient(), cache_dir=Path("/tmp")
        )


async def test_switching_to_serper_is_one_env_var(monkeypatch, metrics: SearchMetrics) -> None:
    monkeypatch.setenv("SSRL_SEARCH__BACKEND", "serper")
    monkeypatch.setenv("SSRL_SEARCH__SERPER__API_KEY", "k-123")
    settings = Settings()
    assert settings.search.backend == "serper"
    backend = await create_search_backend(
        "serper", settings.search, metrics=metrics, client=httpx.AsyncClient(), cache_dir=Path("/tmp")
    )
    assert isinstance(backend, ResilientBackend) and backend.name == "serper"
    assert "k-123" not in repr(settings) and "k-123" not in settings.model_dump_json()


def test_searxng_needs_no_key_and_takes_a_base_url(monkeypatch) -> None:
    monkeypatch.setenv("SSRL_SEARCH__BACKEND", "searxng")
    monkeypatch.setenv("SSRL_SEARCH__SEARXNG__BASE_URL", "http://searxng:8080")
    settings = Settings()
    assert settings.search.searxng.base_url == "http://searxng:8080"


def test_an_unknown_default_backend_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("SSRL_SEARCH__BACKEND", "bing")
    with pytest.raises(ValidationError, match="known: local"):
        Settings()
