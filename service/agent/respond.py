"""Agent runs as OpenAI responses: the trajectory as reasoning_content, the answer as content."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

from service.agent.loop import LoopResult, SearchFailedError, StepEvent, TextDelta
from service.agent.runtime import PreparedAgent
from service.chat import SSE_DONE, record_usage, sse, sse_error
from service.engine.base import EngineError
from service.errors import EngineFailureError, SearchBackendError, ServiceError
from service.metrics import ServiceMetrics
from service.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    DeltaMessage,
    PromptTokensDetails,
    Usage,
)

logger = logging.getLogger(__name__)


def _usage(result: LoopResult) -> Usage:
    return Usage(
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.prompt_tokens + result.completion_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=result.cached_tokens),
    )


def _record(metrics: ServiceMetrics, prepared: PreparedAgent, result: LoopResult, usage: Usage) -> None:
    record_usage(metrics, usage)
    for step in result.trace.steps:
        metrics.search_steps.labels(prepared.mode, step.source).inc()


async def complete_agent(prepared: PreparedAgent, metrics: ServiceMetrics) -> ChatCompletion:
    """Run the loop to its end and build one ``chat.completion``."""
    result: LoopResult | None = None
    try:
        async for event in prepared.loop.run(prepared.prompt_ids, prepared.prefill):
            if isinstance(event, LoopResult):
                result = event
    except EngineError as exc:
        raise EngineFailureError(f"the engine failed: {exc}") from exc
    except SearchFailedError as exc:
        raise SearchBackendError(str(exc)) from exc
    assert result is not None
    usage = _usage(result)
    _record(metrics, prepared, result, usage)
    return ChatCompletion(
        id=prepared.completion_id,
        model=prepared.model,
        choices=[
            Choice(
                index=0,
                message=AssistantMessage(content=result.answer, reasoning_content=result.trajectory),
                finish_reason=result.finish_reason,
            )
        ],
        usage=usage,
        search_trace=result.trace.model_dump(mode="json"),
    )


async def stream_agent(prepared: PreparedAgent, metrics: ServiceMetrics) -> AsyncIterator[str]:
    """SSE: trajectory as reasoning_content deltas, steps as ``search_step`` on chunks as they happen,
    then the answer as content with the finish reason and the whole trace; always ends [DONE]."""
    created = int(time.time())

    def frame(delta: DeltaMessage, finish: str | None = None, **extra: object) -> str:
        chunk = ChatCompletionChunk(
            id=prepared.completion_id,
            created=created,
            model=prepared.model,
            choices=[ChunkChoice(index=0, delta=delta, finish_reason=finish)],
            **extra,  # type: ignore[arg-type]
        )
        return sse(chunk.model_dump_json(exclude_none=True))

    try:
        yield frame(DeltaMessage(role="assistant", content=""))
        async for event in prepared.loop.run(prepared.prompt_ids, prepared.prefill):
            if isinstance(event, TextDelta):
                yield frame(DeltaMessage(reasoning_content=event.text))
            elif isinstance(event, StepEvent):
                yield frame(DeltaMessage(), search_step=event.step.model_dump(mode="json"))
            else:
                usage = _usage(event)
                _record(metrics, prepared, event, usage)
                yield frame(
                    DeltaMessage(content=event.answer),
                    event.finish_reason,
                    search_trace=event.trace.model_dump(mode="json"),
                )
                if prepared.include_usage:
                    chunk = ChatCompletionChunk(
                        id=prepared.completion_id,
                        created=created,
                        model=prepared.model,
                        choices=[],
                        usage=usage,
                    )
                    yield sse(chunk.model_dump_json(exclude_none=True))
    except EngineError as exc:
        logger.warning("stream %s: engine failed: %s", prepared.completion_id, exc)
        yield sse_error(EngineFailureError(f"the engine failed: {exc}"))
    except SearchFailedError as exc:
        yield sse_error(SearchBackendError(str(exc)))
    except Exception:
        logger.exception("stream %s failed", prepared.completion_id)
        yield sse_error(ServiceError("internal server error", code="internal_error"))
    yield SSE_DONE
