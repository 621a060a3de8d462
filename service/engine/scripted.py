"""A scripted engine: a test utility that plays back given replies through the ``Engine`` interface.

It tokenises on word boundaries, honours max_tokens, min_tokens, ignore_eos, stop strings, the
repetition stop and aborts the way vLLM does, reports logprobs, counts its running requests, and can
be told to fail mid-generation.
Tests and benchmarks use it to exercise the service without loading a model.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace

from service.engine.base import (
    ChatMessageDict,
    EngineDeadError,
    EngineError,
    EngineInputError,
    GenerationChunk,
    SamplingOptions,
    TokenLogprob,
    TopLogprob,
)

_TOKEN = re.compile(r"\s*\S+|\s+")
#: The stop reason vLLM gives a sequence its repetition stop ended.
REPETITION_DETECTED = "repetition_detected"
_K = SamplingOptions(max_tokens=1)


@dataclass
class ScriptedReply:
    """What the engine answers to one call: text and, optionally, one logprob per token."""

    text: str
    logprobs: Sequence[float] | None = None


Script = Callable[[str, SamplingOptions], "ScriptedReply | str"]


def search_then(after: str, *, search: str | None = None, plain: str | None = None) -> Script:
    """A script for the agent loop over this engine's chat template.

    Until the trajectory holds a search it writes ``search`` (by default a search for the question
    of the instruction prompt); then it writes ``after``. A prompt without the agent instruction
    (plain chat) gets ``plain`` when one is given.
    """

    def script(prompt: str, _options: SamplingOptions) -> str:
        if plain is not None and "Answer the given question" not in prompt:
            return plain
        trajectory = prompt.rsplit("<|assistant|>\n", 1)[-1]
        if "</search>" in trajectory:
            return after
        if search is not None:
            return search
        question = prompt.split("Question: ")[-1].split("\n")[0]
        return f"<search> {question} </search>"

    return script


@dataclass
class ScriptedCall:
    prompt: str
    prompt_token_ids: list[int]
    options: SamplingOptions
    request_id: str
    session_key: str | None = None


@dataclass
class ScriptedEngine:
    """``Engine`` that answers from a script instead of a model."""

    script: Script | Sequence[ScriptedReply | str] = "Hello from the scripted engine."
    context_length: int = 2048
    token_delay: float = 0.0
    #: Raise EngineError after this many tokens of every generation (None: never).
    fail_after_tokens: int | None = None
    #: Refuse every request at admission with EngineInputError and this message, as vLLM refuses
    #: a schema its structured outputs cannot compile (None: never).
    refuse_input: str | None = None
    calls: list[ScriptedCall] = field(default_factory=list)
    _vocab: dict[str, int] = field(default_factory=dict)
    _words: list[str] = field(default_factory=list)
    _running: set[str] = field(default_factory=set)
    _aborted: set[str] = field(default_factory=set)
    _replies_served: int = 0
    shut_down: bool = False
    #: False once the engine has "died": running and new generations raise EngineDeadError, as
    #: vLLM's do once its engine core process has exited.
    healthy: bool = True

    # -- tokenizer ---------------------------------------------------------------------------
    def _id(self, piece: str) -> int:
        if piece not in self._vocab:
            self._vocab[piece] = len(self._words)
            self._words.append(piece)
        return self._vocab[piece]

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Word-boundary tokens; this tokenizer has no special tokens to add."""
        return [self._id(piece) for piece in _TOKEN.findall(text)]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(self._words[i] for i in token_ids)

    @property
    def max_model_len(self) -> int:
        return self.context_length

    def render_chat(self, messages: list[ChatMessageDict]) -> str:
        turns = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return f"{turns}<|assistant|>\n"

    # -- generation --------------------------------------------------------------------------
    def _next_reply(self, prompt: str, options: SamplingOptions) -> ScriptedReply:
        if callable(self.script):
            reply = self.script(prompt, options)
        elif isinstance(self.script, str):
            reply = self.script
        else:
            replies = list(self.script)
            reply = replies[min(self._replies_served, len(replies) - 1)]
        self._replies_served += 1
        return reply if isinstance(reply, ScriptedReply) else ScriptedReply(reply)

    @staticmethod
    def _apply_stop(text: str, options: SamplingOptions) -> tuple[str, str | None]:
        hits = [(text.find(s), s) for s in options.stop if s and s in text]
        if not hits:
            return text, None
        index, stop = min(hits)
        end = index + len(stop) if options.include_stop_str_in_output else index
        return text[:end], stop

    @classmethod
    def _pieces(cls, text: str, options: SamplingOptions) -> tuple[list[str], str | None]:
        """The tokens of a reply and the stop string that ended it (None: the end-of-sequence token),
        as vLLM decodes it: no stop string is looked for in the first ``min_tokens`` tokens, and an end
        of sequence before ``min_tokens``, or at all with ``ignore_eos``, is replaced by more text
        (numbers, so the repetition stop does not see a loop)."""
        pieces = _TOKEN.findall(text)
        head, tail = pieces[: options.min_tokens], "".join(pieces[options.min_tokens :])
        tail, stop = cls._apply_stop(tail, options)
        pieces = head + _TOKEN.findall(tail)
        if stop is None:
            wanted = options.max_tokens + 1 if options.ignore_eos else options.min_tokens
            pieces += [f" {n}" for n in range(max(0, wanted - len(pieces)))]
        return pieces, stop

    async def generate(
        self,
        prompt_token_ids: list[int],
        options: SamplingOptions,
        request_id: str,
        *,
        session_key: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        """The scripted reply; the first chunk carries the prompt logprobs when they are asked for.
        The session key is recorded with the call (``calls``); one engine has nothing to pin."""
        first = True
        generation = self._generate(prompt_token_ids, options, request_id, session_key)
        async with aclosing(generation) as chunks:
            async for chunk in chunks:
                if first and options.prompt_logprobs is not None:
                    chunk.prompt_logprobs = self._prompt_logprobs(prompt_token_ids, options.prompt_logprobs)
                first = False
                yield chunk

    def _prompt_logprobs(self, prompt_token_ids: list[int], k: int) -> list[TokenLogprob | None]:
        """None for the first token (nothing precedes it), then a logprob per token that varies
        with its position, with ``k`` alternatives as for generated tokens."""
        out: list[TokenLogprob | None] = [None]
        for position, token_id in enumerate(prompt_token_ids[1:], start=1):
            value = -0.25 * (1 + position % 4)
            piece = self._words[token_id]
            entry = self._logprob(ScriptedReply(piece, [value]), 0, replace(_K, logprobs=k), piece)
            out.append(entry[0] if entry else None)
        return out

    async def _generate(
        self, prompt_token_ids: list[int], options: SamplingOptions, request_id: str, session_key: str | None
    ) -> AsyncGenerator[GenerationChunk, None]:
        if not self.healthy:
            raise EngineDeadError("the scripted engine has died")
        if request_id in self._running:
            raise EngineError(f"request id {request_id} already running")
        if self.refuse_input is not None:
            raise EngineInputError(self.refuse_input)
        prompt = self.decode(prompt_token_ids)
        self.calls.append(ScriptedCall(prompt, list(prompt_token_ids), options, request_id, session_key))
        reply = self._next_reply(prompt, options)
        pieces, stop = self._pieces(reply.text, options)
        self._running.add(request_id)
        generated: list[int] = []
        try:
            for index, piece in enumerate(pieces):
                if not self.healthy:
                    raise EngineDeadError("the scripted engine has died")
                if request_id in self._aborted:
                    yield self._chunk("", [], prompt_token_ids, None, "abort", None)
                    return
                if self.fail_after_tokens is not None and index >= self.fail_after_tokens:
                    raise EngineError("scripted failure")
                if index >= options.max_tokens:
                    yield self._chunk("", [], prompt_token_ids, None, "length", None)
                    return
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                else:
                    await asyncio.sleep(0)
                logprob = self._logprob(reply, index, options, piece)
                generated.append(self._id(piece))
                if options.repetition is not None and options.repetition.found_in(generated):
                    # checked after each token, as vLLM's scheduler does, with vLLM's stop reason
                    yield self._chunk(
                        piece, [generated[-1]], prompt_token_ids, logprob, "repetition", REPETITION_DETECTED
                    )
                    return
                last = index == len(pieces) - 1
                yield self._chunk(
                    piece,
                    [generated[-1]],
                    prompt_token_ids,
                    logprob,
                    "stop" if last else None,
                    stop if last else None,
                )
            if not pieces:
                yield self._chunk("", [], prompt_token_ids, None, "stop", stop)
        finally:
            self._running.discard(request_id)
            self._aborted.discard(request_id)

    def _logprob(
        self, reply: ScriptedReply, index: int, options: SamplingOptions, piece: str
    ) -> list[TokenLogprob] | None:
        if options.logprobs is None:
            return None
        value = reply.logprobs[index] if reply.logprobs and index < len(reply.logprobs) else -0.5
        chosen = TopLogprob(token=piece, token_id=self._id(piece), logprob=value)
        # The rest of the probability mass is spread evenly over the alternatives, so a less
        # likely chosen token means a flatter distribution (higher entropy), as in a real model.
        alternatives = max(options.logprobs - 1, 0)
        rest = (1.0 - math.exp(value)) / alternatives if alternatives else 0.0
        alt_logprob = math.log(rest) if rest > 0 else -1e9
        top = (chosen,) + tuple(
            TopLogprob(token=f"<alt{j}>", token_id=self._id(f"<alt{j}>"), logprob=alt_logprob)
            for j in range(alternatives)
        )
        return [TokenLogprob(piece, chosen.token_id, value, top[: options.logprobs])]

    def _chunk(
        self,
        text: str,
        token_ids: list[int],
        prompt_token_ids: list[int],
        logprobs: list[TokenLogprob] | None,
        finish: str | None,
        stop: str | None,
    ) -> GenerationChunk:
        return GenerationChunk(
            text=text,
            token_ids=token_ids,
            prompt_tokens=len(prompt_token_ids),
            logprobs=logprobs,
            finish_reason=finish,  # type: ignore[arg-type]
            stop_reason=stop,
        )

    async def abort(self, request_id: str) -> None:
        if request_id in self._running:
            self._aborted.add(request_id)

    def num_unfinished_requests(self) -> int:
        return len(self._running)

    def is_healthy(self) -> bool:
        return self.healthy

    async def shutdown(self) -> None:
        self.shut_down = True
