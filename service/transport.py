"""HTTP plumbing for the completion routes (``/v1/chat/completions``, ``/v1/completions`` and
``/v1/responses``): bounded body reading, request parsing, disconnect watching, the concurrency
slot, and the SSE writers: ``data:`` chunks ending with ``[DONE]`` for the completions, named events
for the Responses API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from service.errors import PayloadTooLargeError, ServiceError, invalid_request_from_validation
from service.protocol import ChatCompletionRequest, CompletionRequest
from service.validation import check_chat_request

T = TypeVar("T")

logger = logging.getLogger(__name__)


class Completion(Protocol):
    """One prepared completion, chat (plain or agent) or text: the same two ways to answer it.

    Both raise ``ServiceError`` for what the client should hear about; ``stream()`` yields the
    chunks only, and ``sse_events`` frames them.
    """

    @property
    def completion_id(self) -> str: ...

    def stream(self) -> AsyncGenerator[BaseModel, None]: ...

    async def complete(self) -> BaseModel: ...


def sse(payload: str) -> str:
    return f"data: {payload}\n\n"


SSE_DONE = sse("[DONE]")


async def sse_events(completion: Completion) -> AsyncIterator[str]:
    """Server-sent events of the completion's chunks; an error becomes an error frame, and the
    stream always ends with ``data: [DONE]``."""
    try:
        async with contextlib.aclosing(completion.stream()) as chunks:
            async for chunk in chunks:
                yield sse(chunk.model_dump_json())
    except ServiceError as exc:
        logger.warning("stream %s failed: %s", completion.completion_id, exc.message)
        yield sse(json.dumps(exc.body()))
    except Exception:
        logger.exception("stream %s failed", completion.completion_id)
        yield sse(json.dumps(ServiceError("internal server error", code="internal_error").body()))
    yield SSE_DONE


class NamedEvent(Protocol):
    type: str

    def model_dump_json(self) -> str: ...


async def named_sse_events(completion: Completion) -> AsyncIterator[str]:
    """Server-sent events as the Responses API sends them: ``event: <type>`` then its ``data:``, no
    ``[DONE]``. The completion's stream reports its own failures as events (``error``, then
    ``response.failed``); anything else that escapes it ends the stream, logged."""
    try:
        async with contextlib.aclosing(completion.stream()) as events:
            async for event in events:
                named: NamedEvent = event  # type: ignore[assignment]
                yield f"event: {named.type}\n{sse(named.model_dump_json())}"
    except Exception:
        logger.exception("stream %s failed", completion.completion_id)


class ClientDisconnectedError(Exception):
    """The client went away before the response was ready."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    try:
        request = ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request_from_validation(exc) from None
    check_chat_request(request)
    return request


def parse_completion_request(body: bytes) -> CompletionRequest:
    try:
        return CompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request_from_validation(exc) from None


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _stop(task: asyncio.Future[T]) -> None:
    """Cancel ``task`` and wait until it has finished, even if the waiter is cancelled meanwhile
    (that cancellation is raised once the task is done)."""
    task.cancel()
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            interrupted = True
    if not task.cancelled():
        task.exception()  # retrieved: the work failed while stopping, which nobody waits to hear
    if interrupted:
        raise asyncio.CancelledError


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and so aborting its engine requests) if the client leaves.

    If the caller itself is cancelled (shutdown), the work is cancelled too, and this returns (by
    raising) only once the work has stopped, so what the caller releases afterwards (its concurrency
    slot) is released only when nothing runs under it any more.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        watcher.cancel()
        await _stop(task)
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    await _stop(task)
    raise ClientDisconnectedError


async def respond(
    request: Request,
    prepare: Callable[[], Awaitable[Completion]],
    *,
    stream: bool,
    acquire: Callable[[], None],
    release: Callable[[], None],
    frame: Callable[[Completion], AsyncIterator[str]] = sse_events,
) -> Response:
    """Answer one completion request inside a concurrency slot: an event stream framed by ``frame``
    (which releases the slot when it ends) or one JSON body (499 if the client left first)."""
    acquire()
    handed_over = False  # to a streaming response, which releases the slot when the stream ends
    try:
        completion = await prepare()
        headers = {"X-Request-Id": completion.completion_id}
        if stream:
            response = EventStreamResponse(frame(completion), on_close=release)
            response.headers.update(headers)
            handed_over = True
            return response
        try:
            whole = await cancel_on_disconnect(request, completion.complete())
        except ClientDisconnectedError:
            return Response(status_code=499)
        return JSONResponse(whole.model_dump(mode="json"), headers=headers)
    finally:
        if not handed_over:
            release()


class EventStreamResponse(StreamingResponse):
    """A server-sent-events response that runs ``on_close`` however the stream ends.

    Starlette cancels the body iterator when the client disconnects, which closes the engine
    streams inside it; ``on_close`` releases what the request held even if it never started.
    """

    def __init__(self, content: object, on_close: Callable[[], None]) -> None:
        super().__init__(
            content,  # type: ignore[arg-type]
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
