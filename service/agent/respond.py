"""Agent runs as OpenAI responses: the trajectory as reasoning_content, the answer as content."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from service.agent.citations import chat_annotations
from service.agent.loop import LoopEvent, LoopResult, SearchFailedError, StepEvent, TextDelta
from service.agent.runtime import PreparedAgent
from service.engine.base import EngineError
from service.errors import SearchBackendError, engine_failure
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


def _usage(result: LoopResult) -> Usage:
    return Usage.of(result.prompt_tokens, result.completion_tokens, result.cached_tokens)


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
    """A prepared agent run: ``complete()`` for one ``chat.completion``, ``stream()`` for its chunks
    (the trajectory as reasoning_content deltas, each search step on a chunk as it happens, then the
    answer as content with its annotations, the finish reason and the whole trace)."""

    prepared: PreparedAgent
    metrics: ServiceMetrics

    @property
    def completion_id(self) -> str:
        return self.prepared.completion_id

    async def events(self) -> AsyncIterator[LoopEvent]:
        """The loop's events, its failures as the errors a client sees (what every wire shape of an
        agent run is made from: these chunks, and the Responses API's items and events)."""
        prepared = self.prepared
        try:
            run = prepared.loop.run(prepared.prompt_ids, prepared.prefill, prepared.history)
            async with aclosing(run) as events:
                async for event in events:
                    yield event
        except EngineError as exc:
            raise engine_failure(exc) from exc
        except SearchFailedError as exc:
            raise SearchBackendError(str(exc)) from exc

    def record(self, result: LoopResult) -> Usage:
        """The run's usage, counted in the metrics once."""
        usage = _usage(result)
        self.metrics.record_usage(usage)
        for step in result.trace.steps:
            self.metrics.search_steps.labels(self.prepared.mode, step.source).inc()
        return usage

    async def complete(self) -> ChatCompletion:
        """Run the loop to its end and build one ``chat.completion``."""
        result: LoopResult | None = None
        async for event in self.events():
            if isinstance(event, LoopResult):
                result = event
        assert result is not None
        usage = self.record(result)
        return ChatCompletion(
            id=self.prepared.completion_id,
            model=self.prepared.model,
            choices=[Choice(index=0, message=_message(result), finish_reason=result.finish_reason)],
            usage=usage,
            search_trace=result.trace,
        )

    async def stream(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        prepared = self.prepared
        created = int(time.time())

        def chunk_of(
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
                choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)],
                search_step=search_step,
                search_trace=search_trace,
            )

        yield chunk_of(DeltaMessage(role="assistant", content=""))
        async for event in self.events():
            if isinstance(event, TextDelta):
                yield chunk_of(DeltaMessage.of_reasoning(event.text))
            elif isinstance(event, StepEvent):
                yield chunk_of(DeltaMessage(), search_step=event.step)
            else:
                usage = self.record(event)
                if event.tool_query is not None:
                    for delta in _tool_call_deltas(event):
                        yield chunk_of(delta)
                    last = DeltaMessage(annotations=[])
                else:
                    annotations = chat_annotations(event.trace.steps, event.answer)
                    last = DeltaMessage(content=event.answer, annotations=annotations)
                yield chunk_of(last, event.finish_reason, search_trace=event.trace)
                if prepared.include_usage:
                    yield ChatCompletionChunk(
                        id=prepared.completion_id,
                        created=created,
                        model=prepared.model,
                        choices=[],
                        usage=usage,
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
