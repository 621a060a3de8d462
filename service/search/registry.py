"""Backends by name, imported lazily, each wrapped with the shared resilience layer."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import httpx

from service.search.base import SearchBackend
from service.search.metrics import SearchMetrics
from service.search.resilient import ResilientBackend
from service.search.settings import SearchSettings

#: name -> (module, class, the pip requirement its module needs beyond the service's own)
BACKENDS: dict[str, tuple[str, str, str | None]] = {
    "local": ("service.search.local", "LocalBackend", "bm25s PyStemmer"),
    "retriever": ("service.search.retriever", "RetrieverBackend", None),
    "serper": ("service.search.serper", "SerperBackend", None),
    "tavily": ("service.search.tavily", "TavilyBackend", None),
    "brave": ("service.search.brave", "BraveBackend", None),
    "searxng": ("service.search.searxng", "SearxngBackend", None),
}
_NEEDS_KEY = ("serper", "tavily", "brave")


class UnknownBackendError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown search backend '{name}'; known: {', '.join(BACKENDS)}")


class BackendNotReadyError(RuntimeError):
    """A known backend that cannot run here: a missing package or API key."""


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def _backend_class(name: str) -> Any:
    if name not in BACKENDS:
        raise UnknownBackendError(name)
    module, cls, requirement = BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise BackendNotReadyError(
            f"search backend '{name}' needs: pip install {requirement or exc.name}"
        ) from exc


async def create_raw_backend(
    name: str, settings: SearchSettings, client: httpx.AsyncClient, cache_dir: Path
) -> SearchBackend:
    """The backend itself, without the resilience layer."""
    cls = _backend_class(name)
    if name == "local":
        try:
            import bm25s  # noqa: F401
            import Stemmer  # noqa: F401
        except ImportError as exc:
            raise BackendNotReadyError("search backend 'local' needs: pip install bm25s PyStemmer") from exc
        backend: SearchBackend = await cls.create(settings.corpus, cache_dir / "indexes")
        return backend
    api = getattr(settings, name)
    key = api.api_key.get_secret_value() if api.api_key is not None else None
    if name in _NEEDS_KEY and not key:
        raise BackendNotReadyError(
            f"search backend '{name}' has no API key: set SSRL_SEARCH__{name.upper()}__API_KEY"
        )
    kwargs: dict[str, Any] = {"client": client, "base_url": api.base_url, "timeout": settings.timeout}
    if name == "retriever":
        kwargs.update(batch_window_ms=settings.batch_window_ms, max_batch=settings.max_batch)
    else:
        kwargs["api_key"] = key
    backend = cls(**kwargs)
    return backend


async def create_search_backend(
    name: str,
    settings: SearchSettings,
    *,
    metrics: SearchMetrics,
    client: httpx.AsyncClient,
    cache_dir: Path,
) -> ResilientBackend:
    """A backend by name, with retries, a concurrency limit, a cache and coalescing around it."""
    raw = await create_raw_backend(name, settings, client, cache_dir)
    return ResilientBackend(
        raw,
        metrics,
        retries=settings.retries,
        max_retry_wait=settings.max_retry_wait,
        concurrency=settings.concurrency,
        cache_ttl=settings.cache_ttl,
        cache_size=settings.cache_size,
    )
