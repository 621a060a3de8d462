"""Plain text completions (``POST /v1/completions``), as vLLM's server answers them: a prompt or a
batch of prompts, ``n`` choices each, ``echo``, ``logprobs`` in the legacy token-aligned shape
(prompt tokens included when echoed, the first one without a logprob), ``max_tokens`` 0 with echo
for scoring a prompt (lm-eval's loglikelihood requests)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from service.engine.base import Engine, EngineError, GenerationChunk, SamplingOptions, TokenLogprob
from service.errors import InvalidRequestError, engine_failure
from service.generation import (
    clamp_logprob,
    context_room,
    generate_choices,
    repetition_stop,
    sampling_options,
    wire_finish_reason,
)
from service.metrics import ServiceMetrics
from service.protocol import CompletionChoice, CompletionLogprobs, CompletionRequest, TextCompletion, Usage
from service.settings import Settings

#: Most prompts in one request (vLLM's default limit is larger; this one bounds one request's work).
MAX_PROMPTS = 256


@dataclass(frozen=True)
class PreparedPrompt:
    text: str
    token_ids: list[int]


@dataclass(frozen=True)
class PreparedCompletion:
    """A validated text-completion request: its prompts, and the options of each choice (choice
    ``p * n + j`` is the ``j``-th sample of prompt ``p``)."""

    completion_id: str
    model: str
    prompts: list[PreparedPrompt]
    options: list[SamplingOptions]
    n: int
    echo: bool
    #: ``max_tokens`` 0: the engine generates one token, which is dropped (vLLM does the same).
    prompt_only: bool
    logprobs: int | None
    include_usage: bool
    #: The routing key of the conversation (``X-Session-ID``), for the engine.
    session_key: str | None = None

    def prompt_of(self, choice: int) -> PreparedPrompt:
        return self.prompts[choice // self.n]


def _prompt(engine: Engine, index: int, prompt: str | list[int], total: int) -> PreparedPrompt:
    param = "prompt" if total == 1 else f"prompt[{index}]"
    if isinstance(prompt, str):
        try:
            ids = engine.encode(prompt, add_special_tokens=True)  # as vLLM tokenises a text prompt
        except (ValueError, TypeError) as exc:
            raise InvalidRequestError(f"{param} cannot be tokenised: {exc}", param=param) from exc
        text = prompt
    else:
        ids, text = prompt, engine.decode(prompt)
    if not ids:
        raise InvalidRequestError(f"{param} is empty", param=param, code="invalid_value")
    return PreparedPrompt(text, ids)


def prepare_completion(
    request: CompletionRequest,
    engine: Engine,
    settings: Settings,
    model: str,
    session_key: str | None = None,
) -> PreparedCompletion:
    """Check the request against the model's limits and turn it into engine inputs."""
    if request.search_mode not in (None, "off"):
        raise InvalidRequestError(
            "text completions are plain generation; the search modes run on /v1/chat/completions",
            param="search_mode",
        )
    if request.n > settings.max_n:
        raise InvalidRequestError(f"n must be at most {settings.max_n}", param="n")
    raw = request.prompts()
    if not raw:
        raise InvalidRequestError("prompt is empty", param="prompt", code="invalid_value")
    if len(raw) > MAX_PROMPTS:
        raise InvalidRequestError(f"at most {MAX_PROMPTS} prompts per request", param="prompt")
    if request.max_tokens == 0 and not request.echo:
        raise InvalidRequestError(
            "max_tokens 0 generates nothing: it is for echo (scoring the prompt with logprobs)",
            param="max_tokens",
        )
    prompts = [_prompt(engine, i, p, len(raw)) for i, p in enumerate(raw)]
    generated = max(request.max_tokens, 1)
    for i, p in enumerate(prompts):
        context_room(
            engine.max_model_len,
            len(p.token_ids),
            generated,
            prompt_param="prompt" if len(prompts) == 1 else f"prompt[{i}]",
        )
    per_prompt = sampling_options(
        request,
        max_tokens=generated,
        logprobs=request.logprobs,
        prompt_logprobs=request.logprobs if request.echo else None,
        repetition=repetition_stop(request.repetition_detection, None),
    )
    options = [option for _ in prompts for option in per_prompt]
    return PreparedCompletion(
        completion_id=f"cmpl-{uuid.uuid4().hex}",
        model=model,
        prompts=prompts,
        options=options,
        n=request.n,
        echo=request.echo,
        prompt_only=request.max_tokens == 0,
        logprobs=request.logprobs,
        include_usage=bool(request.stream_options and request.stream_options.include_usage),
        session_key=session_key,
    )


Entry = tuple[int, TokenLogprob | None]


@dataclass
class _ChoiceState:
    """What one choice has produced so far, and where its next text offset is."""

    echoed: bool = False
    offset: int = 0
    text: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    generated: int = 0
    cached: int = 0
    finish_reason: str | None = None
    stop_reason: str | int | None = None


@dataclass
class PlainCompletion:
    """A prepared text completion on an engine: ``complete()`` for one ``text_completion``,
    ``stream()`` for its chunks (the same object type, one choice's delta each)."""

    prepared: PreparedCompletion
    engine: Engine
    metrics: ServiceMetrics
    _states: list[_ChoiceState] = field(init=False)

    def __post_init__(self) -> None:
        self._states = [_ChoiceState() for _ in self.prepared.options]

    @property
    def completion_id(self) -> str:
        return self.prepared.completion_id

    def _choices(self) -> AsyncGenerator[tuple[int, GenerationChunk], None]:
        prepared = self.prepared
        prompts = [prepared.prompt_of(i).token_ids for i in range(len(prepared.options))]
        return generate_choices(
            self.engine, prepared.completion_id, prompts, prepared.options, prepared.session_key
        )

    def _piece(self, index: int, state: _ChoiceState, chunk: GenerationChunk) -> tuple[str, list[Entry]]:
        """The text and the tokens this chunk adds to choice ``index``: the prompt first when it is
        echoed, the generated text unless only the prompt was asked for."""
        prepared = self.prepared
        state.cached = max(state.cached, chunk.cached_tokens)
        if chunk.finish_reason:
            state.finish_reason = wire_finish_reason(chunk.finish_reason)
            state.stop_reason = chunk.stop_reason
        text, entries = "", []
        if not prepared.prompt_only:
            state.generated += len(chunk.token_ids)
            text = chunk.text
            logprobs: Sequence[TokenLogprob | None] = chunk.logprobs or [None] * len(chunk.token_ids)
            entries = list(zip(chunk.token_ids, logprobs, strict=False))
        if prepared.echo and not state.echoed:
            state.echoed = True
            prompt = prepared.prompt_of(index)
            scores = chunk.prompt_logprobs or [None] * len(prompt.token_ids)
            text = prompt.text + text
            entries = list(zip(prompt.token_ids, scores, strict=False)) + entries
        return text, entries

    def _logprobs(self, state: _ChoiceState, entries: list[Entry]) -> CompletionLogprobs | None:
        """vLLM's legacy logprobs for ``entries``, offsets continuing from the choice's last one."""
        k = self.prepared.logprobs
        if k is None:
            return None
        out = CompletionLogprobs(text_offset=[], token_logprobs=[], tokens=[], top_logprobs=[])
        for token_id, entry in entries:
            token = entry.token if entry is not None else self.engine.decode([token_id])
            out.tokens.append(token)
            out.text_offset.append(state.offset)
            state.offset += len(token)
            if entry is None:
                out.token_logprobs.append(None)
                out.top_logprobs.append(None)
                continue
            out.token_logprobs.append(clamp_logprob(entry.logprob))
            # The chosen token, then the k most likely ones: at most k + 1 keys, as OpenAI's API says.
            top = {entry.token: clamp_logprob(entry.logprob)}
            for alternative in entry.top[:k]:
                if len(top) > k:
                    break
                top.setdefault(alternative.token, clamp_logprob(alternative.logprob))
            out.top_logprobs.append(top)
        return out

    def _usage(self, states: Sequence[_ChoiceState]) -> Usage:
        prompt_tokens = sum(len(p.token_ids) for p in self.prepared.prompts)
        usage = Usage.of(
            prompt_tokens, sum(s.generated for s in states), max((s.cached for s in states), default=0)
        )
        self.metrics.record_usage(usage)
        return usage

    async def _run(self) -> AsyncGenerator[tuple[int, str, list[Entry]], None]:
        """Each choice's pieces as they come, its state (``self._states``) kept up to date."""
        try:
            async with aclosing(self._choices()) as choices:
                async for index, chunk in choices:
                    text, entries = self._piece(index, self._states[index], chunk)
                    yield index, text, entries
        except EngineError as exc:
            raise engine_failure(exc) from exc

    async def complete(self) -> TextCompletion:
        """Run every choice to the end and build one ``text_completion``."""
        prepared = self.prepared
        states = self._states
        async with aclosing(self._run()) as pieces:
            async for index, text, entries in pieces:
                states[index].text.append(text)
                states[index].entries.extend(entries)
        choices = []
        for i, state in enumerate(states):
            scoring = _ChoiceState()
            choices.append(
                CompletionChoice(
                    index=i,
                    text="".join(state.text),
                    logprobs=self._logprobs(scoring, state.entries),
                    finish_reason=state.finish_reason,
                    stop_reason=state.stop_reason,
                )
            )
        return TextCompletion(
            id=prepared.completion_id, model=prepared.model, choices=choices, usage=self._usage(states)
        )

    async def stream(self) -> AsyncGenerator[TextCompletion, None]:
        """One chunk per choice delta (the echoed prompt on each choice's first), then the usage
        chunk if it was asked for."""
        prepared = self.prepared
        created = int(time.time())
        states = self._states
        async with aclosing(self._run()) as pieces:
            async for index, text, entries in pieces:
                state = states[index]
                if not text and not entries and state.finish_reason is None:
                    continue
                yield TextCompletion(
                    id=prepared.completion_id,
                    created=created,
                    model=prepared.model,
                    choices=[
                        CompletionChoice(
                            index=index,
                            text=text,
                            logprobs=self._logprobs(state, entries),
                            finish_reason=state.finish_reason,
                            stop_reason=state.stop_reason,
                        )
                    ],
                )
        usage = self._usage(states)
        if prepared.include_usage:
            yield TextCompletion(
                id=prepared.completion_id, created=created, model=prepared.model, choices=[], usage=usage
            )
