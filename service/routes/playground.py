"""The playground page: GET / and /playground serve one HTML page, its script, its style sheet and its
icon (packaged in service/playground/), and GET /playground/options tells the page what it may ask for.

The page only speaks to this server's own API; its Content-Security-Policy allows nothing else
(no inline script or style, no other origin, no framing)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from service.protocol import BACKEND_NAMES, SEARCH_MODES, BackendName, SearchMode
from service.search.registry import backend_label, configured_backends
from service.state import State

router = APIRouter()

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
#: The page's three files, by the name they are served under, with their media types.
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


def _asset(name: str) -> Response:
    body = files("service").joinpath("playground", name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers=_SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
@router.get("/playground", include_in_schema=False)
async def page() -> Response:
    return _asset("index.html")


@router.get("/playground/playground.js", include_in_schema=False)
async def script() -> Response:
    return _asset("playground.js")


@router.get("/playground/playground.css", include_in_schema=False)
async def style() -> Response:
    return _asset("playground.css")


@router.get("/playground/favicon.svg", include_in_schema=False)
@router.get("/favicon.ico", include_in_schema=False)  # where browsers look first: never a 404 in the console
async def icon() -> Response:
    return _asset("favicon.svg")


class PlaygroundOptions(BaseModel):
    """What the page offers: the served model, the search modes and the backends this server can use,
    and the defaults."""

    model: str
    modes: list[SearchMode]
    default_mode: SearchMode
    backends: list[BackendName]
    #: How the page names each backend (the local index says which corpus it searches).
    backend_labels: dict[str, str]
    default_backend: str
    top_k: int
    max_turns: int
    auth: bool


@router.get("/playground/options", response_model=PlaygroundOptions)
async def options(state: State) -> PlaygroundOptions:
    """No authentication (like /health): nothing here is secret; ``auth`` says whether keys are on."""
    settings = state.settings
    # only what a request can use: a backend the settings configure, or one already made (or given)
    offered = {*configured_backends(settings.search), *state.agent.backends.instances()}
    return PlaygroundOptions(
        model=state.model_name,
        modes=list(SEARCH_MODES),
        default_mode=settings.default_search_mode(),
        backends=[name for name in BACKEND_NAMES if name in offered],
        backend_labels={name: backend_label(name, settings.search) for name in BACKEND_NAMES},
        default_backend=settings.search.backend,
        top_k=settings.search.top_k,
        max_turns=settings.agent.max_turns,
        auth=bool(settings.api_keys),
    )
