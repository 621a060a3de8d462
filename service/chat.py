"""Plain chat completions (search mode ``off``): prompt building, limits, and the two response forms."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from service.engine.base import (
    ChatMessageDict,
    Engine,
    EngineError,
    GenerationChunk,
    SamplingOptions,
    TokenLogprob,
)
from service.errors import InvalidRequestError, engine_failure
from service.generation import clamp_logprob, generate_choices, render_prompt, sampling_options
from service.metrics import ServiceMetrics
from service.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    DeltaMessage,
    TokenLogprobOut,
    TopLogprobOut,
    Usage,
)
from service.settings import Settings


@dataclass(frozen=True)
class PreparedChat:
    """A validated request, tokenised, with one set of sampling options per choice."""

    completion_id: str
    model: str
    prompt_ids: list[int]
    options: list[SamplingOptions]
    include_usage: bool
    #: The routing key of the conversation (``X-Session-ID``), for the engine.
    session_key: str | None = None


def chat_messages(request: ChatCompletionRequest) -> list[ChatMessageDict]:
    return [{"role": m.role, "content": m.text()} for m in request.messages]


def prepare_chat(
    request: ChatCompletionRequest,
    engine: Engine,
    settings: Settings,
    model: str,
    session_key: str | None = None,
) -> PreparedChat:
    """Check the request against the model's limits and turn it into engine inputs."""
    if request.n > settings.max_n:
        raise InvalidRequestError(f"n must be at most {settings.max_n}", param="n")
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequestError("top_logprobs requires logprobs to be true", param="top_logprobs")
    if request.web_search_options is not None:
        raise InvalidRequestError(
            "web_search_options asks for web search, which search_mode 'off' (plain chat) does not "
            "run: send search_mode 'real' (or 'entropy', 'self') with it, or leave it out",
            param="web_search_options",
            code="invalid_value",
        )
    prompt_ids = render_prompt(engine, chat_messages(request))
    context = engine.max_model_len
    if len(prompt_ids) >= context:
        raise InvalidRequestError(
            f"the messages take {len(prompt_ids)} tokens, more than this model's context of "
            f"{context} tokens leaves room for",
            param="messages",
            code="context_length_exceeded",
        )
    room = context - len(prompt_ids)
    asked = request.requested_max_tokens()
    if asked is not None and asked > room:
        param = "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens"
        raise InvalidRequestError(
            f"{param}={asked} plus the {len(prompt_ids)} prompt tokens exceeds this model's "
            f"context of {context} tokens (at most {room} completion tokens are possible)",
            param=param,
            code="context_length_exceeded",
        )
    max_tokens = asked if asked is not None else min(settings.default_max_tokens, room)
    options = sampling_options(
        request, max_tokens=max_tokens, logprobs=(request.top_logprobs or 0) if request.logprobs else None
    )
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return PreparedChat(
        f"chatcmpl-{uuid.uuid4().hex}", model, prompt_ids, options, include_usage, session_key
    )


def openai_logprobs(entries: list[TokenLogprob]) -> ChoiceLogprobs:
    return ChoiceLogprobs(
        content=[
            TokenLogprobOut(
                token=e.token,
                logprob=clamp_logprob(e.logprob),
                bytes=list(e.token.encode()),
                top_logprobs=[
                    TopLogprobOut(
                        token=t.token, logprob=clamp_logprob(t.logprob), bytes=list(t.token.encode())
                    )
                    for t in e.top
                ],
            )
            for e in entries
        ]
    )


@dataclass
class _Accumulator:
    text: list[str] = field(default_factory=list)
    tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    cached: int = 0

    def add(self, chunk: GenerationChunk) -> None:
        self.text.append(chunk.text)
        self.tokens += len(chunk.token_ids)
        if chunk.logprobs:
            self.logprobs.extend(chunk.logprobs)
        self.cached = max(self.cached, chunk.cached_tokens)
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason


def _usage(prompt_tokens: int, parts: Sequence[_Accumulator]) -> Usage:
    completion = sum(p.tokens for p in parts)
    cached = max((p.cached for p in parts), default=0)
    return Usage.of(prompt_tokens, completion, cached)


@dataclass(frozen=True)
class PlainChat:
    """A prepared plain chat on an engine: ``complete()`` for one ``chat.completion``, ``stream()``
    for its ``chat.completion.chunk``s."""

    prepared: PreparedChat
    engine: Engine
    metrics: ServiceMetrics

    @property
    def completion_id(self) -> str:
        return self.prepared.completion_id

    def _choices(self) -> AsyncGenerator[tuple[int, GenerationChunk], None]:
        prepared = self.prepared
        prompts = [prepared.prompt_ids] * len(prepared.options)
        return generate_choices(
            self.engine, prepared.completion_id, prompts, prepared.options, prepared.session_key
        )

    @property
    def _want_logprobs(self) -> bool:
        return self.prepared.options[0].logprobs is not None

    async def complete(self) -> ChatCompletion:
        """Run every choice to the end and build one ``chat.completion``."""
        prepared = self.prepared
        parts = [_Accumulator() for _ in prepared.options]
        try:
            async with aclosing(self._choices()) as choices:
                async for index, chunk in choices:
                    parts[index].add(chunk)
        except EngineError as exc:
            raise engine_failure(exc) from exc
        usage = _usage(len(prepared.prompt_ids), parts)
        self.metrics.record_usage(usage)
        return ChatCompletion(
            id=prepared.completion_id,
            model=prepared.model,
            choices=[
                Choice(
                    index=i,
                    message=AssistantMessage.of("".join(p.text)),
                    logprobs=openai_logprobs(p.logprobs) if self._want_logprobs else None,
                    finish_reason=p.finish_reason,
                )
                for i, p in enumerate(parts)
            ],
            usage=usage,
        )

    async def stream(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The choices' chunks as they are generated, then the usage chunk if it was asked for."""
        prepared = self.prepared
        created = int(time.time())
        parts = [_Accumulator() for _ in prepared.options]

        def chunk_of(choices: list[ChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=prepared.completion_id, created=created, model=prepared.model, choices=choices, usage=usage
            )

        yield chunk_of(
            [
                ChunkChoice(index=i, delta=DeltaMessage(role="assistant", content=""))
                for i in range(len(parts))
            ]
        )
        try:
            async with aclosing(self._choices()) as choices:
                async for index, generated in choices:
                    parts[index].add(generated)
                    if not generated.text and not generated.finish_reason:
                        continue
                    logprobs = openai_logprobs(generated.logprobs or []) if self._want_logprobs else None
                    yield chunk_of(
                        [
                            ChunkChoice(
                                index=index,
                                delta=DeltaMessage(content=generated.text or None),
                                logprobs=logprobs,
                                finish_reason=generated.finish_reason,
                            )
                        ]
                    )
        except EngineError as exc:
            raise engine_failure(exc) from exc
        usage = _usage(len(prepared.prompt_ids), parts)
        self.metrics.record_usage(usage)
        if prepared.include_usage:
            yield chunk_of([], usage)
