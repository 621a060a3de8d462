"""``ssrl-retriever``: the local BM25 index served over the Search-R1 retrieval API.

POST /retrieve {"queries": [...], "topk": k, "return_scores": true} answers
{"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}, one list per query
(without scores: [[{"id", "contents"}, ...]]), so deployments can run search as its own service
and point the ``retriever`` backend (or Search-R1's own code) at it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict

from service.search.local import LocalIndex

logger = logging.getLogger(__name__)


def _default_index_dir() -> Path:
    return Path.home() / ".cache" / "ssrl" / "indexes"


class RetrieverSettings(BaseSettings):
    """Settings of the standalone retrieval server."""

    model_config = SettingsConfigDict(
        env_prefix="SSRL_RETRIEVER_",
        cli_kebab_case=True,
        cli_prog_name="ssrl-retriever",
        cli_hide_none_type=True,
    )

    host: str = Field(default="127.0.0.1", max_length=255, description="Address to listen on.")
    port: int = Field(default=8001, ge=1, le=65535, description="TCP port to listen on.")
    corpus: Path | None = Field(
        default=None, description="JSONL corpus; unset = the embedded Wikipedia summaries."
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

    queries: list[str] = Field(min_length=1)
    topk: int = Field(default=3, ge=1)
    return_scores: bool = True


def create_retriever_app(settings: RetrieverSettings, index: LocalIndex | None = None) -> FastAPI:
    holder: dict[str, LocalIndex] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder["index"] = index or await asyncio.to_thread(
            LocalIndex.load, settings.corpus, settings.index_dir
        )
        yield

    app = FastAPI(title="SSRL retrieval server", lifespan=lifespan)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": message, "type": "invalid_request_error"}}, status_code=status
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "documents": len(holder["index"].docs)}

    @app.post("/retrieve", response_model=None)
    async def retrieve(request: RetrieveRequest) -> dict[str, Any] | JSONResponse:
        if len(request.queries) > settings.max_queries:
            return error(400, f"at most {settings.max_queries} queries per request")
        if request.topk > settings.max_topk:
            return error(400, f"topk must be at most {settings.max_topk}")
        search = holder["index"].search
        results = await asyncio.to_thread(lambda: [search(q, request.topk) for q in request.queries])
        out = []
        for docs in results:
            hits = []
            for rank, doc in enumerate(docs):
                document = {"id": str(rank), "contents": f'"{doc.title}"\n{doc.text}'}
                hits.append({"document": document, "score": doc.score} if request.return_scores else document)
            out.append(hits)
        return {"result": out}

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    settings = CliApp.run(RetrieverSettings, cli_args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_retriever_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
