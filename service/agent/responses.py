"""``POST /v1/responses`` over the agent runtime: the request becomes the chat request the agent
already serves (``responses_input.py``; then ``AgentRuntime.prepare``: the same prompt, checks and
loop as /v1/chat/completions), and the loop's events become the Responses API's output items and
stream events (shapes: ``service/responses_protocol.py``; the rules: docs/sources-and-responses.md).

Stateless: nothing is stored, so ``store: true``, ``previous_response_id``, ``conversation`` and
``background`` are refused; a client resends the conversation in ``input``.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from typing import Any

from service.agent.citations import cited_documents
from service.agent.loop import LoopResult, StepEvent, TextDelta
from service.agent.respond import AgentCompletion
from service.agent.responses_input import renamed, translate
from service.agent.runtime import AgentRuntime
from service.engine.base import Engine
from service.errors import InvalidRequestError, ServiceError
from service.metrics import ServiceMetrics
from service.protocol import SearchMode, SearchStep
from service.responses_protocol import (
    AnnotationAddedEvent,
    ContentPartEvent,
    ErrorEvent,
    IncompleteDetails,
    InputTokensDetails,
    LifecycleEvent,
    MessageItem,
    OutputItem,
    OutputItemEvent,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    ReasoningText,
    ResponseErrorCode,
    ResponseErrorOut,
    ResponseEvent,
    ResponseObject,
    ResponsesRequest,
    ResponseStatus,
    ResponseUsage,
    SearchAction,
    SearchSource,
    TextDeltaEvent,
    TextDoneEvent,
    UrlCitationOut,
    WebSearchCallItem,
    WebSearchEvent,
    WebSearchToolSpec,
)

logger = logging.getLogger(__name__)


async def prepare_response(
    request: ResponsesRequest,
    runtime: AgentRuntime,
    metrics: ServiceMetrics,
    engine: Engine,
    default_mode: SearchMode,
    session_key: str | None = None,
) -> ResponsesCompletion:
    """``request`` prepared as an agent run (the chat route's ``AgentRuntime.prepare``)."""
    chat, mode, tools = translate(request, default_mode)
    response_id = f"resp_{uuid.uuid4().hex}"
    try:
        prepared = await runtime.prepare(chat, mode, engine, request.model, session_key, response_id)
    except InvalidRequestError as exc:
        raise renamed(exc) from None
    return ResponsesCompletion(AgentCompletion(prepared, metrics), request, tools, response_id)


@dataclass
class ResponsesCompletion:
    """An agent run answered as the Responses API answers: ``complete()`` for one ``response``
    object, ``stream()`` for its events."""

    agent: AgentCompletion
    request: ResponsesRequest
    tools: list[WebSearchToolSpec]
    response_id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def completion_id(self) -> str:
        return self.response_id

    # -- shapes ----------------------------------------------------------------------------------
    def item_id(self, kind: str, suffix: str = "") -> str:
        return f"{kind}_{self.response_id.removeprefix('resp_')}{suffix}"

    def envelope(self, status: ResponseStatus, **fields: Any) -> ResponseObject:
        request = self.request
        return ResponseObject(
            id=self.response_id,
            created_at=self.created_at,
            status=status,
            model=self.agent.prepared.model,
            instructions=request.instructions,
            max_output_tokens=request.max_output_tokens,
            max_tool_calls=request.max_tool_calls,
            temperature=0.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            tools=[tool.echo() for tool in self.tools],
            user=request.user,
            metadata=request.metadata or {},
            **fields,
        )

    def reasoning_item(self, text: str | None) -> ReasoningItem:
        """The trajectory's item: opened (``None``) or done with its whole text."""
        if text is None:
            return ReasoningItem(id=self.item_id("rs"), content=[], status="in_progress")
        return ReasoningItem(id=self.item_id("rs"), content=[ReasoningText(text=text)], status="completed")

    def search_item(self, step: SearchStep, done: bool) -> WebSearchCallItem:
        sources = [SearchSource(url=doc.url) for doc in step.results if doc.url] if done else []
        return WebSearchCallItem(
            id=self.item_id("ws", f"_{step.index}"),
            status=("failed" if step.source == "fallback" else "completed") if done else "in_progress",
            action=SearchAction(query=step.query, sources=sources),
            search_source=step.source,
        )

    def message_item(self, result: LoopResult | None) -> MessageItem:
        if result is None:
            return MessageItem(id=self.item_id("msg"), status="in_progress", content=[])
        return MessageItem(
            id=self.item_id("msg"),
            status="incomplete" if result.finish_reason == "length" else "completed",
            content=[OutputText(text=result.answer or "", annotations=_citations(result))],
        )

    def final(self, result: LoopResult, output: list[OutputItem]) -> ResponseObject:
        usage = self.agent.record(result)
        incomplete = result.finish_reason == "length"
        return self.envelope(
            "incomplete" if incomplete else "completed",
            completed_at=int(time.time()),
            incomplete_details=IncompleteDetails(reason="max_output_tokens") if incomplete else None,
            output=output,
            usage=ResponseUsage(
                input_tokens=usage.prompt_tokens,
                input_tokens_details=InputTokensDetails(
                    cached_tokens=usage.prompt_tokens_details.cached_tokens
                ),
                output_tokens=usage.completion_tokens,
                output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.completion_tokens),
                total_tokens=usage.total_tokens,
            ),
            search_trace=result.trace,
        )

    # -- the two ways to answer -------------------------------------------------------------------
    async def complete(self) -> ResponseObject:
        result: LoopResult | None = None
        async for event in self.agent.events():
            if isinstance(event, LoopResult):
                result = event
        assert result is not None
        output: list[OutputItem] = [
            self.reasoning_item(result.trajectory),
            *(self.search_item(step, done=True) for step in result.trace.steps),
            self.message_item(result),
        ]
        return self.final(result, output)

    async def stream(self) -> AsyncGenerator[ResponseEvent, None]:
        numbers = itertools.count()

        def numbered(event: ResponseEvent) -> ResponseEvent:
            event.sequence_number = next(numbers)
            return event

        events = _StreamEvents(self)
        try:
            for event in events.opening():
                yield numbered(event)
            async for loop_event in self.agent.events():
                for event in events.of(loop_event):
                    yield numbered(event)
        except ServiceError as exc:
            for event in events.failure(exc.code, exc.message, exc.param):
                yield numbered(event)
        except Exception:
            logger.exception("response %s failed", self.response_id)
            for event in events.failure("internal_error", "internal server error", None):
                yield numbered(event)


def _citations(result: LoopResult) -> list[UrlCitationOut]:
    answer = result.answer or ""
    return [
        UrlCitationOut(
            url=doc.url or "", title=doc.title or doc.url or "", start_index=0, end_index=len(answer)
        )
        for doc in cited_documents(result.trace.steps, result.answer)
    ]


@dataclass
class _StreamEvents:
    """The events of one streamed response, in order: the reasoning item opens first (index 0) and
    takes the trajectory's text as it is written; each search is an item of its own as it happens
    (a self mode's searches once its one generation has ended); then the reasoning item closes and
    the message follows with its text, its annotations, and the completed response."""

    response: ResponsesCompletion
    output: dict[int, OutputItem] = field(default_factory=dict)
    searches: dict[int, int] = field(default_factory=dict)  # step index -> output index

    def opening(self) -> Iterator[ResponseEvent]:
        pending = self.response.envelope("in_progress")
        yield LifecycleEvent(type="response.created", response=pending)
        yield LifecycleEvent(type="response.in_progress", response=pending)
        reasoning = self.response.reasoning_item(None)
        yield OutputItemEvent(type="response.output_item.added", output_index=0, item=reasoning)
        yield ContentPartEvent(
            type="response.content_part.added",
            output_index=0,
            item_id=reasoning.id,
            part=ReasoningText(text=""),
        )

    def of(self, event: TextDelta | StepEvent | LoopResult) -> Iterator[ResponseEvent]:
        if isinstance(event, TextDelta):
            yield TextDeltaEvent(
                type="response.reasoning_text.delta",
                output_index=0,
                item_id=self.response.item_id("rs"),
                delta=event.text,
            )
        elif isinstance(event, StepEvent):
            yield from self._search(event.step)
        else:
            yield from self._end(event)

    def _search(self, step: SearchStep) -> Iterator[ResponseEvent]:
        index = self.searches[step.index] = 1 + len(self.searches)
        item = self.response.search_item(step, done=False)
        yield OutputItemEvent(type="response.output_item.added", output_index=index, item=item)
        stages = ["in_progress", "searching"] + ([] if step.source == "fallback" else ["completed"])
        for stage in stages:
            yield WebSearchEvent(
                type=f"response.web_search_call.{stage}", output_index=index, item_id=item.id
            )
        done = self.response.search_item(step, done=True)
        self.output[index] = done
        yield OutputItemEvent(type="response.output_item.done", output_index=index, item=done)

    def _end(self, result: LoopResult) -> Iterator[ResponseEvent]:
        for step in result.trace.steps:
            if step.index not in self.searches:
                yield from self._search(step)
        response = self.response
        reasoning = response.reasoning_item(result.trajectory)
        self.output[0] = reasoning
        rs = reasoning.id
        yield TextDoneEvent(
            type="response.reasoning_text.done", output_index=0, item_id=rs, text=result.trajectory
        )
        yield ContentPartEvent(
            type="response.content_part.done", output_index=0, item_id=rs, part=reasoning.content[0]
        )
        yield OutputItemEvent(type="response.output_item.done", output_index=0, item=reasoning)
        yield from self._answer(result, 1 + len(self.searches))
        final = response.final(result, [self.output[i] for i in sorted(self.output)])
        kind = "response.incomplete" if final.status == "incomplete" else "response.completed"
        yield LifecycleEvent(type=kind, response=final)

    def _answer(self, result: LoopResult, index: int) -> Iterator[ResponseEvent]:
        opened = self.response.message_item(None)
        message = self.response.message_item(result)
        [text] = message.content
        at, item = index, message.id
        yield OutputItemEvent(type="response.output_item.added", output_index=at, item=opened)
        yield ContentPartEvent(
            type="response.content_part.added", output_index=at, item_id=item, part=OutputText(text="")
        )
        if text.text:
            yield TextDeltaEvent(
                type="response.output_text.delta", output_index=at, item_id=item, delta=text.text, logprobs=[]
            )
        for number, annotation in enumerate(text.annotations):
            yield AnnotationAddedEvent(
                output_index=at, item_id=item, annotation_index=number, annotation=annotation
            )
        yield TextDoneEvent(
            type="response.output_text.done", output_index=at, item_id=item, text=text.text, logprobs=[]
        )
        yield ContentPartEvent(type="response.content_part.done", output_index=at, item_id=item, part=text)
        self.output[index] = message
        yield OutputItemEvent(type="response.output_item.done", output_index=index, item=message)

    def failure(self, code: str | None, message: str, param: str | None) -> Iterator[ResponseEvent]:
        yield ErrorEvent(code=code, message=message, param=param)
        kind: ResponseErrorCode = "rate_limit_exceeded" if code == "rate_limit_exceeded" else "server_error"
        failed = self.response.envelope("failed", error=ResponseErrorOut(code=kind, message=message))
        yield LifecycleEvent(type="response.failed", response=failed)
