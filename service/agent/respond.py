"""Agent runs as OpenAI responses: the trajectory as reasoning_content, the answer as content."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from service.agent.citations import chat_annotations
from service.agent.loop import LoopEvent, LoopResult, SearchFailedError, StepEvent, TextDelta
from service.agent.runtime import PreparedAgent
from service.engine.base import EngineError
from service.errors import SearchBackendError, engine_failure
from service.generation import merge_choices
from service.metrics import ServiceMetrics
from service.protocol import (
    SEARCH_TOOL,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    DeltaMessage,
    FunctionCall,
    SearchStep,
    SearchTrace,
    ToolCallDelta,
    ToolCallOut,
    Usage,
)


def _usage(results: Sequence[LoopResult]) -> Usage:
    """The usage of all choices together: each choice's turns, summed (every turn re-submits its
    prompt, so the prompt of each choice counts; the prefix cache's share is in ``cached_tokens``)."""
    return Usage.of(
        sum(r.prompt_tokens for r in results),
        sum(r.completion_tokens for r in results),
        sum(r.cached_tokens for r in results),
    )


def _arguments(result: LoopResult) -> str:
    return json.dumps({"query": result.tool_query})


def _message(result: LoopResult) -> AssistantMessage:
    """The answer as content and the trajectory as reasoning_content; for a search the caller runs
    (client mode), the tool call, with this request's trajectory in content too, because that is the
    field every client echoes back (LangChain's ChatOpenAI drops reasoning_content)."""
    if result.tool_query is None:
        message = AssistantMessage.of(result.answer, result.trajectory)
        message.annotations = chat_annotations(result.trace.steps, result.answer)
        return message
    assert result.tool_call_id is not None
    call = ToolCallOut(
        id=result.tool_call_id, function=FunctionCall(name=SEARCH_TOOL, arguments=_arguments(result))
    )
    message = AssistantMessage.of(result.trajectory, result.trajectory)
    message.tool_calls = [call]
    message.annotations = []
    return message


def _argument_pieces(arguments: str, size: int = 16) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


@dataclass(frozen=True)
class AgentCompletion:
    """A prepared agent run of ``n`` choices, each its own trajectory (loop), run side by side over
    the same prompt: ``complete()`` for one ``chat.completion``, ``stream()`` for its chunks (each
    choice's trajectory as reasoning_content deltas, its search steps on chunks as they happen, then
    its answer as content with its annotations, its finish reason and its whole trace; every chunk
    after the first carries one choice, so the chunk's ``search_step`` and ``search_trace`` are that
    choice's)."""

    prepared: PreparedAgent
    metrics: ServiceMetrics

    @property
    def completion_id(self) -> str:
        return self.prepared.completion_id

    async def events(self, index: int = 0) -> AsyncIterator[LoopEvent]:
        """Choice ``index``'s loop events, its failures as the errors a client sees (what every wire
        shape of an agent run is made from: these chunks, and the Responses API's items and events,
        which have one choice)."""
        prepared = self.prepared
        try:
            run = prepared.loops[index].run(prepared.prompt_ids, prepared.prefill, prepared.history)
            async with aclosing(run) as events:
                async for event in events:
                    yield event
        except EngineError as exc:
            raise engine_failure(exc) from exc
        except SearchFailedError as exc:
            raise SearchBackendError(str(exc)) from exc

    def choices(self) -> AsyncGenerator[tuple[int, LoopEvent], None]:
        """Every choice's events, interleaved as they come; the first failure fails the request."""
        return merge_choices([self.events(i) for i in range(len(self.prepared.loops))])

    def record(self, *results: LoopResult) -> Usage:
        """The run's usage (all its choices'), counted in the metrics once."""
        usage = _usage(results)
        self.metrics.record_usage(usage)
        for result in results:
            for step in result.trace.steps:
                self.metrics.search_steps.labels(self.prepared.mode, step.source).inc()
        return usage

    async def complete(self) -> ChatCompletion:
        """Run every choice's loop to its end and build one ``chat.completion``."""
        results: dict[int, LoopResult] = {}
        async with aclosing(self.choices()) as choices:
            async for index, event in choices:
                if isinstance(event, LoopResult):
                    results[index] = event
        ordered = [results[i] for i in range(len(self.prepared.loops))]
        usage = self.record(*ordered)
        return ChatCompletion(
            id=self.prepared.completion_id,
            model=self.prepared.model,
            choices=[
                Choice(index=i, message=_message(r), finish_reason=r.finish_reason, search_trace=r.trace)
                for i, r in enumerate(ordered)
            ],
            usage=usage,
            search_trace=ordered[0].trace,
        )

    async def stream(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        prepared = self.prepared
        created = int(time.time())

        def chunk_of(
            index: int,
            delta: DeltaMessage,
            finish: str | None = None,
            *,
            search_step: SearchStep | None = None,
            search_trace: SearchTrace | None = None,
        ) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=prepared.completion_id,
                created=created,
                model=prepared.model,
                choices=[ChunkChoice(index=index, delta=delta, finish_reason=finish)],
                search_step=search_step,
                search_trace=search_trace,
            )

        yield ChatCompletionChunk(
            id=prepared.completion_id,
            created=created,
            model=prepared.model,
            choices=[
                ChunkChoice(index=i, delta=DeltaMessage(role="assistant", content=""))
                for i in range(len(prepared.loops))
            ],
        )
        results: dict[int, LoopResult] = {}
        async with aclosing(self.choices()) as choices:
            async for index, event in choices:
                if isinstance(event, TextDelta):
                    yield chunk_of(index, DeltaMessage.of_reasoning(event.text))
                elif isinstance(event, StepEvent):
                    yield chunk_of(index, DeltaMessage(), search_step=event.step)
                else:
                    results[index] = event
                    if event.tool_query is not None:
                        for delta in _tool_call_deltas(event):
                            yield chunk_of(index, delta)
                        last = DeltaMessage(annotations=[])
                    else:
                        annotations = chat_annotations(event.trace.steps, event.answer)
                        last = DeltaMessage(content=event.answer, annotations=annotations)
                    yield chunk_of(index, last, event.finish_reason, search_trace=event.trace)
        usage = self.record(*(results[i] for i in range(len(prepared.loops))))
        if prepared.include_usage:
            yield ChatCompletionChunk(
                id=prepared.completion_id, created=created, model=prepared.model, choices=[], usage=usage
            )


def _tool_call_deltas(result: LoopResult) -> list[DeltaMessage]:
    """A search the caller runs, streamed as OpenAI streams a tool call: this request's trajectory as
    content (what clients accumulate and echo back), then the call's id, type and name, then its
    arguments in pieces."""
    assert result.tool_call_id is not None
    first = ToolCallDelta(
        index=0, id=result.tool_call_id, type="function", function={"name": SEARCH_TOOL, "arguments": ""}
    )
    return [
        DeltaMessage(content=result.trajectory),
        DeltaMessage(tool_calls=[first]),
        *(
            DeltaMessage(tool_calls=[ToolCallDelta(index=0, function={"arguments": piece})])
            for piece in _argument_pieces(_arguments(result))
        ),
    ]
