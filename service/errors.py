"""One exception hierarchy and the handlers that turn it into OpenAI's error shape."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from service.engine.base import EngineDeadError, EngineError, EngineInputError
from service.protocol import ErrorBody, ErrorResponse

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with an HTTP status and an OpenAI-style body."""

    status_code = 500
    error_type = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return ErrorResponse(
            error=ErrorBody(message=self.message, type=self.error_type, param=self.param, code=self.code)
        ).model_dump()


class InvalidRequestError(ServiceError):
    status_code = 400
    error_type = "invalid_request_error"


class BackendUnavailableError(InvalidRequestError):
    """A known search backend that cannot be used here: a missing package, API key or corpus."""

    default_code = "backend_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="search.backend")


class AuthenticationError(ServiceError):
    status_code = 401
    error_type = "invalid_request_error"
    default_code = "invalid_api_key"


class NotFoundError(ServiceError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class PayloadTooLargeError(ServiceError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(ServiceError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class EngineFailureError(ServiceError):
    status_code = 500
    error_type = "server_error"
    default_code = "engine_error"


class SearchBackendError(ServiceError):
    status_code = 502
    error_type = "server_error"
    default_code = "search_failed"


class ServiceUnavailableError(ServiceError):
    status_code = 503
    error_type = "server_error"
    default_code = "model_loading"


class EngineDeadServiceError(ServiceUnavailableError):
    """The engine process died: this process exits so that its supervisor restarts it."""

    default_code = "engine_dead"

    def __init__(self) -> None:
        super().__init__(
            "the engine has died; the service is restarting, retry shortly", headers={"Retry-After": "10"}
        )


def engine_failure(exc: EngineError) -> ServiceError:
    """What the client hears of an engine error, the same in every search mode (plain chat, text
    completions, the agent loop): a 400 when the engine refused the request's input (a schema its
    structured outputs cannot compile, an option it rejects), a 503 once the engine has died (the
    service exits for its supervisor to restart it), a 500 otherwise."""
    if isinstance(exc, EngineInputError):
        return InvalidRequestError(f"the engine refused the request: {exc}", code="invalid_value")
    if isinstance(exc, EngineDeadError):
        return EngineDeadServiceError()
    return EngineFailureError(f"the engine failed: {exc}")


def error_response(exc: ServiceError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def _location(error: Mapping[str, Any]) -> list[str]:
    return [
        f"[{part}]" if isinstance(part, int) else str(part) for part in error.get("loc", ()) if part != "body"
    ]


def param_path(parts: Sequence[str]) -> str:
    """OpenAI's spelling of a location: list indices in brackets (``messages[2].content``)."""
    return "".join(p if p.startswith("[") else f".{p}" for p in parts).lstrip(".")


def _param(errors: Sequence[Mapping[str, Any]]) -> str | None:
    """The first error's location, cut to what it shares with the other errors about the same
    parameter: a value that fits no member of a union gets one error per member, each located
    under that member's tag (``stop.str``, ``stop.list[str]``), and the parameter is their prefix."""
    prefix = _location(errors[0])
    for other in map(_location, errors[1:]):
        if not prefix or not other or other[0] != prefix[0]:
            continue
        shared = 0
        while shared < min(len(prefix), len(other)) and prefix[shared] == other[shared]:
            shared += 1
        prefix = prefix[:shared]
    return param_path(prefix) or None


def _describe(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """A readable message and the offending parameter from pydantic's error list."""
    first = errors[0]
    param = _param(errors)
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('msg', '')}", None
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else str(first.get("msg"))
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return message, param


def invalid_request_from_validation(exc: ValidationError | RequestValidationError) -> InvalidRequestError:
    errors = exc.errors()
    message, param = _describe(errors)
    code = "invalid_json" if errors[0].get("type") == "json_invalid" else "invalid_value"
    return InvalidRequestError(message, param=param, code=code)


_STATUS_TYPES = {401: AuthenticationError, 404: NotFoundError, 413: PayloadTooLargeError}


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the service as ``{"error": {message, type, param, code}}``."""

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(invalid_request_from_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = _STATUS_TYPES.get(
            exc.status_code, InvalidRequestError if exc.status_code < 500 else ServiceError
        )
        err = cls(str(exc.detail), headers=exc.headers)
        err.status_code = exc.status_code
        return error_response(err)

    @app.exception_handler(ClientDisconnect)
    async def _client_left(request: Request, _: ClientDisconnect) -> Response:
        # The client closed the connection while its body was still being read: nothing went wrong
        # here and nobody is left to answer (499, as a request left mid-answer gets).
        logger.info("%s %s: the client left before its body was read", request.method, request.url.path)
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(ServiceError("internal server error", code="internal_error"))
