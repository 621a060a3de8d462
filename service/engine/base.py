"""The engine interface the routes and the agent loop talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict, runtime_checkable

from prometheus_client import CollectorRegistry

#: ``repetition``: the sequence was ended by its ``RepetitionStop`` (vLLM's own finish reason for it).
FinishReason = Literal["stop", "length", "abort", "repetition"]


class ChatMessageDict(TypedDict):
    role: str
    content: str


class EngineError(RuntimeError):
    """The engine failed to produce output for a request (not the caller's fault)."""


class EngineDeadError(EngineError):
    """The engine itself has died (its process exited): no request can be served until the service
    is restarted."""


class EngineInputError(EngineError):
    """The engine refused the request before generating anything: the caller's fault (a schema its
    structured-output backend cannot compile, an option it rejects)."""


@dataclass(frozen=True)
class StructuredOutput:
    """A constraint on the generated text: any JSON object (``json_schema`` None), or JSON valid
    under ``json_schema`` (the schema as JSON text)."""

    json_schema: str | None = None


@dataclass(frozen=True)
class RepetitionStop:
    """End a sequence whose last tokens are one pattern of ``min_pattern``..``max_pattern`` tokens
    repeated at least ``min_count`` times in a row: vLLM's ``RepetitionDetectionParams``, checked by
    its scheduler after every token (finish reason ``repetition``)."""

    max_pattern: int
    min_count: int
    min_pattern: int = 1

    def found_in(self, token_ids: Sequence[int]) -> bool:
        """vLLM's rule (``check_sequence_repetition`` in ``vllm/v1/core/sched/utils.py``), for
        engines without it: for each pattern length, shortest first, whether the last ``length``
        tokens equal each of the ``min_count - 1`` blocks of ``length`` tokens before them."""
        if self.max_pattern <= 0 or self.min_count < 2:
            return False
        for length in range(max(self.min_pattern, 1), self.max_pattern + 1):
            if length * self.min_count > len(token_ids):
                return False
            tail = token_ids[len(token_ids) - length :]
            if all(
                token_ids[len(token_ids) - length * (m + 1) : len(token_ids) - length * m] == tail
                for m in range(1, self.min_count)
            ):
                return True
        return False


@dataclass(frozen=True)
class SamplingOptions:
    """Decoding options for one sequence."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    #: None: no logprobs; k >= 0: the chosen token's logprob plus the k most likely alternatives.
    logprobs: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    #: None: free text; otherwise the engine's structured outputs constrain the text.
    structured: StructuredOutput | None = None
    #: None: no prompt logprobs; k >= 0: each prompt token's logprob plus the k most likely
    #: alternatives (the first prompt token has none), on the sequence's first chunk.
    prompt_logprobs: int | None = None
    #: None: no repetition stop; otherwise the engine ends a sequence that repeats itself.
    repetition: RepetitionStop | None = None
    #: vLLM's: neither the end-of-sequence token nor a stop string ends the text before this many tokens.
    min_tokens: int = 0
    #: vLLM's: the end-of-sequence token does not end the text (stop strings and the limits still do).
    ignore_eos: bool = False


@dataclass(frozen=True)
class TopLogprob:
    token: str
    token_id: int
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """The logprob of one generated token and its most likely alternatives."""

    token: str
    token_id: int
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass
class GenerationChunk:
    """One step of output for one sequence: deltas since the previous chunk."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    cached_tokens: int = 0
    logprobs: list[TokenLogprob] | None = None
    finish_reason: FinishReason | None = None
    #: The stop string (or token id) that ended the sequence, if any.
    stop_reason: str | int | None = None
    #: One entry per prompt token (None for the first), on the first chunk when they were asked for.
    prompt_logprobs: list[TokenLogprob | None] | None = None


@runtime_checkable
class Engine(Protocol):
    """What the service needs from a text-generation engine."""

    @property
    def max_model_len(self) -> int:
        """Context length: prompt plus completion tokens."""

    def render_chat(self, messages: list[ChatMessageDict]) -> str:
        """Apply the model's chat template, ending with the assistant generation prompt."""

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; with ``add_special_tokens`` the tokenizer's own (a BOS token for
        some models), as vLLM's text completions tokenise a prompt."""

    def decode(self, token_ids: list[int]) -> str:
        """The text of ``token_ids``."""

    def generate(
        self,
        prompt_token_ids: list[int],
        options: SamplingOptions,
        request_id: str,
        *,
        session_key: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        """Stream the sequence's output. Closing the iterator early aborts the request.

        ``session_key`` is the routing key of the conversation or trajectory the request belongs to
        (the client's ``X-Session-ID``), None without one: an engine with several copies of the model
        (vLLM data parallelism) sends every request of one key to the same copy, whose prefix cache
        holds the conversation; other engines may ignore it."""

    async def abort(self, request_id: str) -> None:
        """Stop a running request; unknown ids are ignored."""

    def num_unfinished_requests(self) -> int:
        """Requests the engine is still working on."""

    def is_healthy(self) -> bool:
        """False once the engine has died and cannot serve any more requests."""

    async def shutdown(self) -> None:
        """Release the engine's processes and memory."""


@runtime_checkable
class ExportsMetrics(Protocol):
    """An engine with Prometheus metrics of its own (vLLM's ``vllm:*``), served on ``/metrics``."""

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The registry the engine records its metrics into (never the process-wide default)."""
