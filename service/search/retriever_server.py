"""``ssrl-retriever``: the local BM25 index served over the Search-R1 retrieval API.

POST /retrieve ``{"queries": [...], "topk": k, "return_scores": true}`` answers
``{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}``, one list per query
(without scores: ``[[{"id", "contents"}, ...]]``); a document with a URL (every article of the
embedded corpus: its Wikipedia page) carries it as ``"url"`` beside them, so results keep their
source. Deployments can run search as a service of its own and point the ``retriever`` backend (or
Search-R1's own code) at it. GET /health says whether the index is loaded and how many documents it
holds.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict

from service.search.corpus import format_contents
from service.search.local import LocalIndex

logger = logging.getLogger(__name__)


def _default_index_dir() -> Path:
    return Path.home() / ".cache" / "ssrl" / "indexes"


class RetrieverSettings(BaseSettings):
    """Settings of the standalone retrieval server (flags, or SSRL_RETRIEVER_* variables)."""

    model_config = SettingsConfigDict(
        env_prefix="SSRL_RETRIEVER_",
        extra="forbid",
        cli_kebab_case=True,
        cli_prog_name="ssrl-retriever",
        cli_hide_none_type=True,
    )

    host: str = Field(default="127.0.0.1", min_length=1, max_length=255, description="Address to listen on.")
    port: int = Field(default=8001, ge=1, le=65535, description="TCP port to listen on.")
    corpus: Path | None = Field(
        default=None,
        description="JSONL corpus ({id, contents} or {title, text}); unset = the embedded Wikipedia "
        "summaries.",
    )
    index_dir: Path = Field(default_factory=_default_index_dir, description="Where the BM25 index is cached.")
    max_queries: int = Field(default=512, ge=1, le=100_000, description="Most queries in one request.")
    max_topk: int = Field(default=100, ge=1, le=10_000, description="Largest topk a request may ask.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")

    @field_validator("corpus", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    queries: list[str] = Field(min_length=1, description="Questions to retrieve documents for.")
    topk: int = Field(default=3, ge=1, description="Documents per query.")
    return_scores: bool = Field(default=True, description="Wrap each document with its BM25 score.")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)


def _index(request: Request) -> LocalIndex | None:
    index: LocalIndex | None = getattr(request.app.state, "index", None)
    return index


IndexDep = Annotated[LocalIndex | None, Depends(_index)]


def create_retriever_app(settings: RetrieverSettings, index: LocalIndex | None = None) -> FastAPI:
    """The app. With ``index`` it serves that one; otherwise it loads (or builds) the index of
    ``settings.corpus`` in a thread at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.index = index or await asyncio.to_thread(
            LocalIndex.load, settings.corpus, settings.index_dir
        )
        logger.info("retrieval server ready: %d documents", len(app.state.index.docs))
        yield

    app = FastAPI(title="SSRL retrieval server", lifespan=lifespan)
    app.state.settings = settings

    @app.get("/health", response_model=None)
    async def health(index: IndexDep) -> dict[str, Any] | JSONResponse:
        if index is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return {"status": "ok", "documents": len(index.docs)}

    @app.post("/retrieve", response_model=None)
    async def retrieve(request: RetrieveRequest, index: IndexDep) -> dict[str, Any] | JSONResponse:
        if index is None:
            return _error(503, "the index is still loading")
        if len(request.queries) > settings.max_queries:
            return _error(400, f"at most {settings.max_queries} queries per request")
        if request.topk > settings.max_topk:
            return _error(400, f"topk must be at most {settings.max_topk}")
        hits = await asyncio.to_thread(index.search_many, request.queries, request.topk)
        corpus = index.corpus
        result = []
        for per_query in hits:
            documents = []
            for position, score in per_query:
                doc = corpus.docs[position]
                document = {"id": corpus.ids[position], "contents": format_contents(doc.title, doc.text)}
                if doc.url:  # beside Search-R1's two keys, so that results keep their source
                    document["url"] = doc.url
                documents.append(
                    {"document": document, "score": score} if request.return_scores else document
                )
            result.append(documents)
        return {"result": result}

    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ssrl-retriever``: flags from the settings fields, served by uvicorn."""
    import uvicorn

    settings = CliApp.run(RetrieverSettings, cli_args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_retriever_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
