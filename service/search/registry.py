"""Backends by name, imported lazily, each wrapped with the shared resilience layer.

As in fsspec's registry: an unknown name is an error listing the known ones, and a backend whose
optional packages are missing is an error saying what to ``pip install``; nothing is imported until a
backend is asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.errors import BackendUnavailableError
from service.protocol import BACKEND_NAMES
from service.search.base import SearchBackend
from service.search.corpus import EMBEDDED_PACKAGE, EMBEDDED_REQUIREMENT
from service.search.metrics import SearchMetrics
from service.search.resilient import ResilientBackend
from service.search.settings import SearchSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendSpec:
    module: str
    cls: str
    #: (import name, pip requirement) of the optional packages the backend needs.
    requires: tuple[tuple[str, str], ...] = ()
    #: Whether it refuses to start without an API key.
    needs_key: bool = False
    #: Whether it speaks HTTP (and so takes a client, a base URL and maybe a key).
    http: bool = True


BACKENDS: dict[str, BackendSpec] = {
    "local": BackendSpec(
        "service.search.local",
        "LocalBackend",
        requires=(("bm25s", "bm25s>=0.2.6"), ("Stemmer", "PyStemmer>=2.2")),
        http=False,
    ),
    "retriever": BackendSpec("service.search.retriever", "RetrieverBackend"),
    "serper": BackendSpec("service.search.serper", "SerperBackend", needs_key=True),
    "tavily": BackendSpec("service.search.tavily", "TavilyBackend", needs_key=True),
    "brave": BackendSpec("service.search.brave", "BraveBackend", needs_key=True),
    "searxng": BackendSpec("service.search.searxng", "SearxngBackend"),
}


class UnknownBackendError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown search backend '{name}'; known: {', '.join(BACKENDS)}")
        self.name = name


def backend_names() -> tuple[str, ...]:
    return BACKEND_NAMES


def backend_label(name: str, settings: SearchSettings) -> str:
    """A backend as a person reads it: the local index names its corpus; others go by their name."""
    if name != "local":
        return name
    corpus = "Wikipedia summaries" if settings.corpus is None else settings.corpus.name
    return f"local ({corpus}, BM25)"


def configured_backends(settings: SearchSettings) -> list[str]:
    """The backends this server's settings make usable (what a page may offer): the default
    backend, ``local`` when its corpus and packages are here, an API backend with its key, and a
    self-hosted one (retriever, SearXNG) whose address was set. Others would be a 400 (no key) or a
    fallback on every search (nothing listening at the default address)."""

    def usable(name: str) -> bool:
        spec = BACKENDS[name]
        if any(importlib.util.find_spec(module) is None for module, _ in spec.requires):
            return False
        if not spec.http:
            return settings.corpus is not None or importlib.util.find_spec(EMBEDDED_PACKAGE) is not None
        api = getattr(settings, name)
        if spec.needs_key:
            return api.api_key is not None and bool(api.api_key.get_secret_value())
        return "base_url" in api.model_fields_set

    return [name for name in BACKENDS if name == settings.backend or usable(name)]


def _spec(name: str) -> BackendSpec:
    spec = BACKENDS.get(name)
    if spec is None:
        raise UnknownBackendError(name)
    missing = [pip for module, pip in spec.requires if importlib.util.find_spec(module) is None]
    if missing:
        raise BackendUnavailableError(f"search backend '{name}' needs: pip install {' '.join(missing)}")
    return spec


def backend_class(name: str) -> Any:
    """The raw backend class of ``name``, imported now."""
    spec = _spec(name)
    try:
        return getattr(importlib.import_module(spec.module), spec.cls)
    except ImportError as exc:
        raise BackendUnavailableError(f"search backend '{name}' needs: pip install {exc.name}") from exc


async def create_raw_backend(
    name: str,
    settings: SearchSettings,
    client: httpx.AsyncClient | None,
    cache_dir: Path,
) -> SearchBackend:
    """The backend itself, without the resilience layer. With no ``client``, an HTTP backend makes
    its own and closes it in ``aclose``."""
    cls = backend_class(name)
    spec = BACKENDS[name]
    if not spec.http:
        if settings.corpus is None and importlib.util.find_spec(EMBEDDED_PACKAGE) is None:
            raise BackendUnavailableError(f"search backend 'local' needs its corpus: {EMBEDDED_REQUIREMENT}")
        index_dir = settings.index_dir or cache_dir / "indexes"
        backend: SearchBackend = await cls.create(settings.corpus, index_dir, settings.snippet_words)
        return backend
    api = getattr(settings, name)
    key = api.api_key.get_secret_value() if api.api_key is not None else None
    if spec.needs_key and not key:
        raise BackendUnavailableError(
            f"search backend '{name}' has no API key: set SSRL_SEARCH__{name.upper()}__API_KEY"
        )
    kwargs: dict[str, Any] = {"base_url": api.base_url, "timeout": settings.timeout, "api_key": key}
    if name == "retriever":
        kwargs.update(batch_window_ms=settings.batch_window_ms, max_batch=settings.max_batch)
    if client is None:
        client = httpx.AsyncClient(follow_redirects=True)
        kwargs["owns_client"] = True
    return cls(client, **kwargs)


async def create_search_backend(
    settings: SearchSettings,
    *,
    metrics: SearchMetrics,
    cache_dir: Path,
    client: httpx.AsyncClient | None = None,
    name: str | None = None,
) -> ResilientBackend:
    """The backend ``name`` (default: ``settings.backend``), with the per-call deadline, retries, a
    concurrency limit, the cache and coalescing around it.

    HTTP backends speak through ``client``; without one they make their own and close it with the
    backend. The local backend loads (or builds) its index in a thread before this returns. Raises
    ``UnknownBackendError`` for a name not in the registry and ``BackendUnavailableError`` for one
    that cannot run here.
    """
    name = name or settings.backend
    raw = await create_raw_backend(name, settings, client, cache_dir)
    logger.info("search backend %s ready", name)
    return ResilientBackend(
        raw,
        metrics,
        timeout=settings.timeout,
        retries=settings.retries,
        max_retry_wait=settings.max_retry_wait,
        concurrency=settings.concurrency,
        cache_ttl=settings.cache_ttl,
        cache_size=settings.cache_size,
    )
