"""``Client`` and ``AsyncClient``: chat with the SSRL service, get typed answers and search traces."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Literal, overload

import httpx
from tenacity import AsyncRetrying, Retrying

from ssrl_client._base import BaseClient
from ssrl_client._errors import APIConnectionError, APITimeoutError
from ssrl_client._search import (
    MAX_ROUNDS,
    SEARCH_TOOL,
    AsyncSearchFunction,
    SearchFunction,
    rounds_exhausted,
    search_call,
    tool_message,
)
from ssrl_client._streaming import AsyncStream, Stream
from ssrl_client.types import ChatResult

Messages = list[dict[str, Any]]


def _question(question: str) -> Messages:
    return [{"role": "user", "content": question}]


class Client(BaseClient[httpx.Client]):
    """Synchronous client. ``http_client`` may be any ``httpx.Client`` (for proxies, tests...)."""

    def _new_http(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout)

    # -- transport ---------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        url = self.base_url + path
        for attempt in Retrying(**self._retry_policy()):
            with attempt:
                request = self._http.build_request(
                    method,
                    url,
                    json=json,
                    headers={**self._headers(), **(headers or {})},
                    timeout=self.timeout,
                )
                try:
                    response = self._http.send(request, stream=stream)
                except httpx.TimeoutException as exc:
                    raise APITimeoutError(request) from exc
                except httpx.TransportError as exc:
                    raise APIConnectionError(str(exc) or type(exc).__name__, request=request) from exc
                if response.status_code >= 400:
                    if stream:
                        response.read()
                        response.close()
                    self._raise_for_status(response, self._json(response))
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _default_model(self) -> str:
        if self.model is None:
            self.model = self.models()[0]
        return self.model

    # -- API ---------------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the served models."""
        return [m["id"] for m in self._send("GET", "/v1/models").json()["data"]]

    def health(self) -> dict[str, Any]:
        """The service's /health answer (raises ServerError while the model loads)."""
        return dict(self._send("GET", "/health").json())

    @overload
    def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        search_mode: str | None = None,
        search: Mapping[str, Any] | SearchFunction | None = None,
        session_id: str | None = None,
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatResult: ...

    @overload
    def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        search_mode: str | None = None,
        search: Mapping[str, Any] | SearchFunction | None = None,
        session_id: str | None = None,
        stream: Literal[True],
        **params: Any,
    ) -> Stream: ...

    @overload
    def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        search_mode: str | None = None,
        search: Mapping[str, Any] | SearchFunction | None = None,
        session_id: str | None = None,
        stream: bool = False,
        **params: Any,
    ) -> ChatResult | Stream: ...

    def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        search_mode: str | None = None,
        search: Mapping[str, Any] | SearchFunction | None = None,
        session_id: str | None = None,
        stream: bool = False,
        **params: Any,
    ) -> ChatResult | Stream:
        """A chat completion. ``params`` are OpenAI fields (max_tokens, temperature, seed, stop...).
        With ``stream=True`` returns a ``Stream`` of typed events; use it in a ``with`` block.
        ``search`` is either the search options (backend, top_k, max_turns...) or a function that
        runs each search itself (``query -> text or [{"title", "text", "url"}]``, client mode).
        ``session_id`` is the routing key sent as ``X-Session-ID`` (what vllm-router's
        ``consistent_hash`` policy keys on); unset, it is derived from the conversation's opening
        messages, so every request of one conversation or ``ask`` (tool-call rounds and retries
        included) carries the same key."""
        if callable(search):
            return self._chat_searching(
                messages, search, model=model, stream=stream, params=params, session_id=session_id
            )
        model = model or self._default_model()
        body = self._chat_body(
            messages, model, stream=stream, search_mode=search_mode, search=search, params=params
        )
        headers = self._session_headers(list(messages), model, session_id)
        response = self._send("POST", "/v1/chat/completions", json=body, stream=stream, headers=headers)
        if stream:
            return Stream(response)
        return ChatResult.from_wire(response.json(), response.headers.get("x-request-id"))

    @overload
    def ask(
        self,
        question: str,
        *,
        search_mode: str | None = None,
        backend: str | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        threshold: float | None = None,
        search: SearchFunction | None = None,
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatResult: ...

    @overload
    def ask(
        self,
        question: str,
        *,
        search_mode: str | None = None,
        backend: str | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        threshold: float | None = None,
        search: SearchFunction | None = None,
        stream: Literal[True],
        **params: Any,
    ) -> Stream: ...

    @overload
    def ask(
        self,
        question: str,
        *,
        search_mode: str | None = None,
        backend: str | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        threshold: float | None = None,
        search: SearchFunction | None = None,
        stream: bool = False,
        **params: Any,
    ) -> ChatResult | Stream: ...

    def ask(
        self,
        question: str,
        *,
        search_mode: str | None = None,
        backend: str | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        threshold: float | None = None,
        search: SearchFunction | None = None,
        stream: bool = False,
        **params: Any,
    ) -> ChatResult | Stream:
        """Ask one question through the search loop (``search_mode``: self, real, entropy, client or
        off). With ``search=`` a function, the search runs here: the server asks for each search as a
        tool call and this calls ``search(query)`` and sends its results back, until the answer."""
        options = self._search_options(backend, top_k, max_turns, threshold)
        if search is not None:
            return self._chat_searching(
                _question(question), search, stream=stream, params={**params, "search": options}
            )
        return self.chat(
            _question(question), search_mode=search_mode, search=options, stream=stream, **params
        )

    def _chat_searching(
        self,
        messages: Messages,
        search: SearchFunction,
        *,
        model: str | None = None,
        stream: bool,
        params: dict[str, Any],
        session_id: str | None = None,
    ) -> ChatResult:
        if stream:
            raise TypeError("a search function runs the loop to its answer: use it without stream=True")
        messages = list(messages)
        options = params.pop("search", None)
        model = model or self._default_model()
        # One key for every round: derived from the opening messages, which later rounds extend.
        headers = self._session_headers(messages, model, session_id or params.pop("session_id", None))
        for _ in range(MAX_ROUNDS):
            body = self._chat_body(
                messages,
                model,
                stream=False,
                search_mode="client",
                search=options,
                params={**params, "tools": [SEARCH_TOOL]},
            )
            response = self._send("POST", "/v1/chat/completions", json=body, headers=headers)
            data = response.json()
            call = search_call(data)
            if call is None:
                return ChatResult.from_wire(data, response.headers.get("x-request-id"))
            message, call_id, query = call
            messages += [message, tool_message(call_id, search(query))]
        raise rounds_exhausted()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(BaseClient[httpx.AsyncClient]):
    """Asynchronous client over ``httpx.AsyncClient``."""

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        url = self.base_url + path
        async for attempt in AsyncRetrying(**self._retry_policy()):
            with attempt:
                request = self._http.build_request(
                    method,
                    url,
                    json=json,
                    headers={**self._headers(), **(headers or {})},
                    timeout=self.timeout,
                )
                try:
                    response = await self._http.send(request, stream=stream)
                except httpx.TimeoutException as exc:
                    raise APITimeoutError(request) from exc
                except httpx.TransportError as exc:
                    raise APIConnectionError(str(exc) or type(exc).__name__, request=request) from exc
                if response.status_code >= 400:
                    if stream:
                        await response.aread()
                        await response.aclose()
                    self._raise_for_status(response, self._json(response))
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _default_model(self) -> str:
        if self.model is None:
            self.model = (await self.models())[0]
        return self.model

    async def models(self) -> list[str]:
        """Names of the served models."""
        return [m["id"] for m in (await self._send("GET", "/v1/models")).json()["data"]]

    async def health(self) -> dict[str, Any]:
        return dict((await self._send("GET", "/health")).json())

    @overload
    async def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        search_mode: str | None = None,
        search: Mapping[str, Any] | AsyncSearchFunction | None = None,
        session_id: str | None = None,
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatResult: ...

    @overload
    async def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        search_mode: str | None = None,
        search: Mapping[str, Any] | AsyncSearchFunction | None = None,
        session_id: str | None = None,
        stream: Literal[True],
        **params: Any,
    ) -> AsyncStream: ...

    @overload
    async def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        search_mode: str | None = None,
        search: Mapping[str, Any] | AsyncSearchFunction | None = None,
        session_id: str | None = None,
        stream: bool = False,
        **params: Any,
    ) -> ChatResult | AsyncStream: ...

    async def chat(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        search_mode: str | None = None,
        search: Mapping[str, Any] | AsyncSearchFunction | None = None,
        session_id: str | None = None,
        stream: bool = False,
        **params: Any,
    ) -> ChatResult | AsyncStream:
        """As ``Client.chat``; with ``stream=True`` use the result in an ``async with`` block.
        A ``search`` function may be sync or async."""
        if callable(search):
            return await self._chat_searching(
                messages, search, model=model, stream=stream, params=params, session_id=session_id
            )
        model = model or await self._default_model()
        body = self._chat_body(
            messages, model, stream=stream, search_mode=search_mode, search=search, params=params
        )
        headers = self._session_headers(list(messages), model, session_id)
        response = await self._send("POST", "/v1/chat/completions", json=body, stream=stream, headers=headers)
        if stream:
            return AsyncStream(response)
        return ChatResult.from_wire(response.json(), response.headers.get("x-request-id"))

    @overload
    async def ask(
        self,
        question: str,
        *,
        search_mode: str | None = None,
        backend: str | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        threshold: float | None = None,
        search: AsyncSearchFunction | None = None,
        stream: Literal[False] = False,
        **params: Any,
    ) -> ChatResult: ...

    @overload
    async def ask(
        self,
        question: str,
        *,
        search_mode: str | None = None,
        backend: str | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        threshold: float | None = None,
        search: AsyncSearchFunction | None = None,
        stream: Literal[True],
        **params: Any,
    ) -> AsyncStream: ...

    @overload
    async def ask(
        self,
        question: str,
        *,
        search_mode: str | None = None,
        backend: str | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        threshold: float | None = None,
        search: AsyncSearchFunction | None = None,
        stream: bool = False,
        **params: Any,
    ) -> ChatResult | AsyncStream: ...

    async def ask(
        self,
        question: str,
        *,
        search_mode: str | None = None,
        backend: str | None = None,
        top_k: int | None = None,
        max_turns: int | None = None,
        threshold: float | None = None,
        search: AsyncSearchFunction | None = None,
        stream: bool = False,
        **params: Any,
    ) -> ChatResult | AsyncStream:
        """As ``Client.ask``; a ``search`` function may be sync or async."""
        options = self._search_options(backend, top_k, max_turns, threshold)
        if search is not None:
            return await self._chat_searching(
                _question(question), search, stream=stream, params={**params, "search": options}
            )
        return await self.chat(
            _question(question), search_mode=search_mode, search=options, stream=stream, **params
        )

    async def _chat_searching(
        self,
        messages: Messages,
        search: AsyncSearchFunction,
        *,
        model: str | None = None,
        stream: bool,
        params: dict[str, Any],
        session_id: str | None = None,
    ) -> ChatResult:
        if stream:
            raise TypeError("a search function runs the loop to its answer: use it without stream=True")
        messages = list(messages)
        options = params.pop("search", None)
        model = model or await self._default_model()
        # One key for every round: derived from the opening messages, which later rounds extend.
        headers = self._session_headers(messages, model, session_id or params.pop("session_id", None))
        for _ in range(MAX_ROUNDS):
            body = self._chat_body(
                messages,
                model,
                stream=False,
                search_mode="client",
                search=options,
                params={**params, "tools": [SEARCH_TOOL]},
            )
            response = await self._send("POST", "/v1/chat/completions", json=body, headers=headers)
            data = response.json()
            call = search_call(data)
            if call is None:
                return ChatResult.from_wire(data, response.headers.get("x-request-id"))
            message, call_id, query = call
            results = search(query)
            if inspect.isawaitable(results):
                results = await results
            messages += [message, tool_message(call_id, results)]
        raise rounds_exhausted()

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
