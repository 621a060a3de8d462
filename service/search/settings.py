"""Settings of the search backends, mounted as ``Settings.search`` (env ``SSRL_SEARCH__...``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from service.protocol import BACKEND_NAMES


class ApiBackendSettings(BaseModel):
    """Where a search API lives and the key it wants."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(min_length=1, max_length=2048, description="Base URL of the API.")
    api_key: SecretStr | None = Field(
        default=None, max_length=4096, description="API key (never logged or returned); empty = unset."
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """``SSRL_SEARCH__SERPER__API_KEY=`` (as a compose file passes an unset variable) means no key."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return None if isinstance(value, str) and not value.strip() else value


# One class per API so that each base URL has its own default, and setting only a key
# (SSRL_SEARCH__SERPER__API_KEY=...) keeps it.
class RetrieverApi(ApiBackendSettings):
    base_url: str = Field(
        default="http://127.0.0.1:8001", min_length=1, max_length=2048, description="Base URL."
    )


class SerperApi(ApiBackendSettings):
    base_url: str = Field(
        default="https://google.serper.dev", min_length=1, max_length=2048, description="Base URL."
    )


class TavilyApi(ApiBackendSettings):
    base_url: str = Field(
        default="https://api.tavily.com", min_length=1, max_length=2048, description="Base URL."
    )


class BraveApi(ApiBackendSettings):
    base_url: str = Field(
        default="https://api.search.brave.com", min_length=1, max_length=2048, description="Base URL."
    )


class SearxngApi(ApiBackendSettings):
    base_url: str = Field(
        default="http://localhost:8888", min_length=1, max_length=2048, description="Base URL."
    )


class SearchSettings(BaseModel):
    """Which backend answers real searches, and how every backend behaves."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field(
        default="local",
        min_length=1,
        max_length=64,
        description=f"Default backend: {', '.join(BACKEND_NAMES)}.",
    )
    top_k: int = Field(default=3, ge=1, le=50, description="Results per search (the paper used 3).")
    timeout: float = Field(default=10.0, gt=0.0, le=300.0, description="Seconds per backend call.")
    retries: int = Field(default=2, ge=0, le=10, description="Retries after a timeout, 429 or 5xx.")
    max_retry_wait: float = Field(
        default=10.0, ge=0.0, le=300.0, description="Longest wait between retries, Retry-After included."
    )
    concurrency: int = Field(default=16, ge=1, le=1024, description="Calls in flight per backend.")
    cache_ttl: float = Field(
        default=3600.0, ge=0.0, le=30 * 86400.0, description="Seconds a result stays cached; 0 = no cache."
    )
    cache_size: int = Field(default=10_000, ge=0, le=10_000_000, description="Cached queries per backend.")
    corpus: Path | None = Field(
        default=None,
        description="JSONL corpus for the local backend ({id, contents} or {title, text}); unset = the "
        "embedded 10,033 Wikipedia lead summaries.",
    )
    snippet_words: int = Field(
        default=40,
        ge=0,
        le=100_000,
        description="local: words of each result, the sentences that match the query best (as a web "
        "engine's snippet); 0 = the whole document, clipped to agent.result_words.",
    )
    index_dir: Path | None = Field(
        default=None,
        description="Where the local backend caches its BM25 index; unset = <cache_dir>/indexes.",
    )
    batch_window_ms: float = Field(
        default=5.0, ge=0.0, le=1000.0, description="retriever: wait this long to batch concurrent queries."
    )
    max_batch: int = Field(default=64, ge=1, le=4096, description="retriever: most queries per call.")
    retriever: RetrieverApi = Field(
        default_factory=RetrieverApi, description="Search-R1 retrieval server (POST /retrieve)."
    )
    serper: SerperApi = Field(default_factory=SerperApi, description="Serper (Google), the paper's engine.")
    tavily: TavilyApi = Field(default_factory=TavilyApi, description="Tavily search API.")
    brave: BraveApi = Field(default_factory=BraveApi, description="Brave search API.")
    searxng: SearxngApi = Field(
        default_factory=SearxngApi, description="Self-hosted SearXNG with format=json enabled."
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKEND_NAMES:
            raise ValueError(f"unknown search backend '{value}'; known: {', '.join(BACKEND_NAMES)}")
        return value

    @field_validator("corpus", "index_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
