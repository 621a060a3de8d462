"""One exception class per kind of failure, as the openai package does."""

from __future__ import annotations

from typing import Any

import httpx


class SSRLError(Exception):
    """Base of every error the SDK raises."""


class APIConnectionError(SSRLError):
    """The service could not be reached (refused, reset, DNS)."""

    def __init__(self, message: str = "connection error", *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """The service did not answer in time."""

    def __init__(self, request: httpx.Request | None = None) -> None:
        super().__init__("request timed out", request=request)


class APIStatusError(SSRLError):
    """The service answered with an error status (or sent an error frame mid-stream)."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
        code: str | None = None,
        param: str | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        #: The HTTP response that carried the error (for a mid-stream error frame: the stream's).
        self.response = response
        self.request_id = request_id
        self.body = body
        self.code = code
        self.param = param
        #: Seconds the service asked to wait before retrying (Retry-After), if it said.
        self.retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}" + (
            f" (request {self.request_id})" if self.request_id else ""
        )


class BadRequestError(APIStatusError):
    """400: the request is invalid (the message names the parameter)."""


class AuthenticationError(APIStatusError):
    """401: missing or wrong API key."""


class NotFoundError(APIStatusError):
    """404: unknown model or route."""


class RequestTooLargeError(APIStatusError):
    """413: the body is over the service's limit."""


class RateLimitError(APIStatusError):
    """429: too many requests in flight; retried automatically, raised when retries run out."""


class ServerError(APIStatusError):
    """5xx: the service or its engine failed; retried automatically."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    413: RequestTooLargeError,
    429: RateLimitError,
}


def status_error(
    status: int, body: Any, request_id: str | None, response: httpx.Response | None = None
) -> APIStatusError:
    """The exception for an error status and its OpenAI-style body."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or f"HTTP {status}")
        code, param = error.get("code"), error.get("param")
    else:
        message, code, param = (str(body) if body else f"HTTP {status}"), None, None
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIStatusError)
    return cls(
        message,
        status_code=status,
        request_id=request_id,
        body=body,
        code=code,
        param=param,
        response=response,
    )
