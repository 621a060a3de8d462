"""Server-sent events into typed stream events, for both clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from ssrl_client._errors import status_error
from ssrl_client.types import (
    AnswerDelta,
    Done,
    ReasoningDelta,
    SearchStep,
    SearchStepEvent,
    SearchTrace,
    StreamEvent,
    Usage,
)


class _Decoder:
    """Turns ``data:`` payloads into events; remembers the end until usage (if any) has come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.request_id = response.headers.get("x-request-id")
        self.finished = False
        self.done = Done()

    def events(self, payload: str) -> list[StreamEvent]:
        if payload == "[DONE]":
            self.finished = True
            return [self.done]
        chunk: dict[str, Any] = json.loads(payload)
        if "error" in chunk:  # an error frame mid-stream
            error = chunk["error"]
            status = 502 if error.get("code") == "search_failed" else 500
            raise status_error(status, chunk, self.request_id, self.response)
        out: list[StreamEvent] = []
        choices = chunk.get("choices") or []
        # Every chunk but the first carries one choice: its search step and trace are that choice's.
        owner = choices[0].get("index", 0) if len(choices) == 1 else 0
        if chunk.get("search_step"):
            step = SearchStep.model_validate(chunk["search_step"])
            out.append(SearchStepEvent(step=step, index=owner))
        for choice in choices:
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                out.append(ReasoningDelta(text=delta["reasoning_content"], index=index))
            if delta.get("content"):
                out.append(AnswerDelta(text=delta["content"], index=index))
            if choice.get("finish_reason"):
                self.done.finish_reasons[index] = choice["finish_reason"]
                if index == 0:
                    self.done.finish_reason = choice["finish_reason"]
                    self.done.stop_reason = choice.get("stop_reason")
        if chunk.get("search_trace"):
            trace = SearchTrace.model_validate(chunk["search_trace"])
            self.done.traces[owner] = trace
            if owner == 0:
                self.done.trace = trace
        if chunk.get("usage"):
            self.done.usage = Usage.from_wire(chunk["usage"])
        return out


def _payload(line: str) -> str | None:
    return line[5:].lstrip() if line.startswith("data:") else None


class Stream:
    """Typed events of a streaming chat; use as a context manager so the connection is closed."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._decoder = _Decoder(response)

    def __iter__(self) -> Iterator[StreamEvent]:
        try:
            for line in self.response.iter_lines():
                payload = _payload(line)
                if payload is None:
                    continue
                yield from self._decoder.events(payload)
                if self._decoder.finished:
                    break
        finally:
            self.response.close()

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream:
    """The async twin of ``Stream``."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._decoder = _Decoder(response)

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        try:
            async for line in self.response.aiter_lines():
                payload = _payload(line)
                if payload is None:
                    continue
                for event in self._decoder.events(payload):
                    yield event
                if self._decoder.finished:
                    break
        finally:
            await self.response.aclose()

    async def close(self) -> None:
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
