"""What plain chat, text completions and the agent loop share on the way to the engine: the prompt
under the chat template, the sampling options of each choice, the choices run side by side, and
the one rule for logprobs that JSON cannot carry."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TypeVar

from jinja2 import TemplateError

from service.engine.base import ChatMessageDict, Engine, GenerationChunk, RepetitionStop, SamplingOptions
from service.errors import InvalidRequestError
from service.protocol import ChatCompletionRequest, CompletionRequest, RepetitionDetection
from service.settings import RepetitionSettings
from service.validation import structured_output

T = TypeVar("T")

#: The lowest logprob on the wire: JSON has no -inf (vLLM and OpenAI clamp to this too).
MIN_LOGPROB = -9999.0


def clamp_logprob(value: float) -> float:
    """A logprob as the wire carries it: -inf, NaN and anything below ``MIN_LOGPROB`` become it."""
    return value if math.isfinite(value) and value >= MIN_LOGPROB else MIN_LOGPROB


def render_prompt(engine: Engine, messages: list[ChatMessageDict]) -> list[int]:
    """Token ids of the messages under the model's chat template; a template error is the caller's."""
    try:
        return engine.encode(engine.render_chat(messages))
    except (TemplateError, ValueError, TypeError) as exc:  # UnicodeError is a ValueError
        raise InvalidRequestError(
            f"the messages cannot be rendered with this model's chat template: {exc}", param="messages"
        ) from exc


def repetition_stop(
    asked: RepetitionDetection | None, default: RepetitionSettings | None
) -> RepetitionStop | None:
    """The repetition stop of a request: its own ``repetition_detection`` if it sent one, else the
    server's (None: no stop, as ``max_pattern_size`` 0 is)."""
    if asked is not None:
        size, smallest, count = asked.max_pattern_size, asked.min_pattern_size, asked.min_count
    elif default is not None:
        size, smallest, count = default.max_pattern_size, default.min_pattern_size, default.min_count
    else:
        return None
    return RepetitionStop(size, count, smallest) if size > 0 else None


def wire_finish_reason(reason: str | None) -> str | None:
    """A finish reason as OpenAI clients know them: the repetition stop is ``length`` (the text was
    cut before the model finished it, as by the token limit; ``stop`` would claim a natural end, and
    vLLM's own ``repetition`` is a value typed OpenAI clients do not know)."""
    return "length" if reason == "repetition" else reason


def context_room(
    context: int,
    prompt_tokens: int,
    asked: int | None,
    *,
    asked_param: str = "max_tokens",
    prompt_param: str = "messages",
    reserved: int = 0,
) -> int:
    """The one context rule of every route and mode: the completion tokens a prompt of
    ``prompt_tokens`` leaves in a context of ``context``. A prompt that leaves no more than
    ``reserved`` tokens (an agent's prefill is part of its trajectory) is a 400 on ``prompt_param``;
    an ``asked`` number of completion tokens (``max_tokens``, a whole trajectory's in the agent modes)
    past the room is a 400 on ``asked_param``, never silently shortened."""
    room = context - prompt_tokens
    if room <= reserved:
        raise InvalidRequestError(
            f"the prompt takes {prompt_tokens} tokens, more than this model's context of {context} "
            "tokens leaves room for",
            param=prompt_param,
            code="context_length_exceeded",
        )
    if asked is not None and asked > room:
        raise InvalidRequestError(
            f"{asked_param}={asked} plus the {prompt_tokens} prompt tokens exceeds this model's "
            f"context of {context} tokens (at most {room} completion tokens are possible)",
            param=asked_param,
            code="context_length_exceeded",
        )
    return room


def sampling_options(
    request: ChatCompletionRequest | CompletionRequest,
    *,
    max_tokens: int,
    logprobs: int | None,
    prompt_logprobs: int | None = None,
    repetition: RepetitionStop | None = None,
) -> list[SamplingOptions]:
    """The engine's options for each of the ``n`` sequences of a chat or text completion request
    (the seed of sequence ``i`` is ``seed + i``, so they differ and each is reproducible)."""
    if request.min_tokens > max_tokens:
        raise InvalidRequestError(
            f"min_tokens={request.min_tokens} is more than the {max_tokens} completion tokens this "
            "request may generate (its max_tokens, or the room its prompt leaves)",
            param="min_tokens",
        )
    base_seed = None if request.seed is None else request.seed % 2**63
    structured = structured_output(request.response_format)
    return [
        SamplingOptions(
            max_tokens=max_tokens,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=1.0 if request.top_p is None else request.top_p,
            seed=None if base_seed is None else (base_seed + i) % 2**63,
            stop=request.stop_list(),
            logprobs=logprobs,
            presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
            structured=structured,
            prompt_logprobs=prompt_logprobs,
            repetition=repetition,
            min_tokens=request.min_tokens,
            ignore_eos=request.ignore_eos,
        )
        for i in range(request.n)
    ]


async def merge_choices(streams: Sequence[AsyncIterator[T]]) -> AsyncGenerator[tuple[int, T], None]:
    """Interleave the output of several sequences (engine chunks, or agent loop events), each item
    with its stream's index; the first failure is raised; closing this closes (aborts) them all."""
    if len(streams) == 1:
        async for chunk in streams[0]:
            yield 0, chunk
        return
    queue: asyncio.Queue[tuple[int, T | BaseException | None]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[T]) -> None:
        try:
            async for chunk in stream:
                await queue.put((index, chunk))
            await queue.put((index, None))
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put((index, exc))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def generate_choices(
    engine: Engine,
    completion_id: str,
    prompts: Sequence[list[int]],
    options: Sequence[SamplingOptions],
    session_key: str | None,
) -> AsyncGenerator[tuple[int, GenerationChunk], None]:
    """Choice ``i``: ``prompts[i]`` under ``options[i]``, engine request ``{completion_id}-{i}`` of
    the session ``session_key``; the choices' chunks interleaved as they come."""
    return merge_choices(
        [
            engine.generate(prompt, opts, f"{completion_id}-{i}", session_key=session_key)
            for i, (prompt, opts) in enumerate(zip(prompts, options, strict=True))
        ]
    )
