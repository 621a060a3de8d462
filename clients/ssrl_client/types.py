"""Typed results of the SDK: answers, trajectories, search traces, usage and stream events."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Doc(_Model):
    title: str
    text: str
    url: str | None = None
    score: float | None = None


class TextSpan(_Model):
    """Where a block lies in the trajectory: ``trajectory[start:end]`` (tags included; characters)."""

    start: int
    end: int


class SearchStep(_Model):
    """One search of the trajectory and who answered it: ``self``, ``real``, ``fallback`` or
    ``client`` (the caller's own search function). ``search_span`` and ``information_span`` locate
    its ``<search>`` and ``<information>`` blocks in the trajectory (None where a block is not in it):
    for a ``real`` step the information block is text the service injected, for ``self`` and
    ``fallback`` steps text the model wrote."""

    index: int
    query: str
    source: Literal["self", "real", "fallback", "client"]
    backend: str | None = None
    results: list[Doc] = Field(default_factory=list)
    self_information: str | None = None
    latency_ms: float | None = None
    #: The results came from the server's search cache, not the backend.
    cache_hit: bool = False
    uncertainty: float | None = None
    cached_tokens: int = 0
    error: str | None = None
    search_span: TextSpan | None = None
    information_span: TextSpan | None = None


class GenerationTurn(_Model):
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    stopped_by: str


class SearchTrace(_Model):
    mode: str
    backend: str | None = None
    steps: list[SearchStep] = Field(default_factory=list)
    turns: list[GenerationTurn] = Field(default_factory=list)
    corrections: int = 0
    end_reason: str | None = None
    detail: str | None = None


class Usage(_Model):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int = 0

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Usage:
        details = data.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=data["prompt_tokens"],
            completion_tokens=data["completion_tokens"],
            total_tokens=data["total_tokens"],
            cached_tokens=details.get("cached_tokens", 0),
        )


class ChoiceResult(_Model):
    """One choice of a chat (``n`` > 1 gives several, each its own trajectory and trace)."""

    index: int
    answer: str | None
    trajectory: str | None = None
    finish_reason: str | None = None
    #: vLLM's (search mode ``off``): the stop string that ended the text, or ``repetition_detected``.
    stop_reason: int | str | None = None
    trace: SearchTrace | None = None

    @property
    def steps(self) -> list[SearchStep]:
        return self.trace.steps if self.trace else []

    @property
    def end_reason(self) -> str | None:
        """Why this choice's search loop ended (``trace.end_reason``); None in search mode ``off``."""
        return self.trace.end_reason if self.trace else None

    @classmethod
    def from_wire(cls, choice: dict[str, Any], fallback_trace: Any = None) -> ChoiceResult:
        message = choice.get("message") or {}
        trace = choice.get("search_trace") or fallback_trace
        return cls(
            index=choice.get("index", 0),
            answer=message.get("content"),
            trajectory=message.get("reasoning_content"),
            finish_reason=choice.get("finish_reason"),
            stop_reason=choice.get("stop_reason"),
            trace=SearchTrace.model_validate(trace) if trace else None,
        )


class ChatResult(_Model):
    """A finished chat: the answer, the trajectory that led to it, and its search trace (those of
    the first choice), every choice in ``choices``, and the usage of them all."""

    id: str
    model: str
    #: The final answer (the last <answer>; the whole reply in search mode ``off``).
    answer: str | None
    #: The whole trajectory (agent modes): reasoning, searches, results.
    trajectory: str | None = None
    finish_reason: str | None = None
    #: vLLM's (search mode ``off``): the stop string that ended the text, or ``repetition_detected``.
    stop_reason: int | str | None = None
    trace: SearchTrace | None = None
    usage: Usage | None = None
    request_id: str | None = None
    #: Every choice, in index order (one unless the request asked ``n``).
    choices: list[ChoiceResult] = Field(default_factory=list)

    @property
    def steps(self) -> list[SearchStep]:
        return self.trace.steps if self.trace else []

    @property
    def end_reason(self) -> str | None:
        """Why the search loop ended (``trace.end_reason``): ``answer``, ``token_budget``,
        ``repetition``, ``malformed_action``, ``no_answer``, ``context_full`` or ``tool_call``;
        None in search mode ``off``, which has no loop (see ``finish_reason`` and ``stop_reason``)."""
        return self.trace.end_reason if self.trace else None

    @classmethod
    def from_wire(cls, data: dict[str, Any], request_id: str | None = None) -> ChatResult:
        top = data.get("search_trace")
        choices = [
            ChoiceResult.from_wire(c, top if c.get("index", 0) == 0 else None) for c in data["choices"]
        ]
        choices.sort(key=lambda c: c.index)
        first = choices[0]
        return cls(
            id=data["id"],
            model=data["model"],
            answer=first.answer,
            trajectory=first.trajectory,
            finish_reason=first.finish_reason,
            stop_reason=first.stop_reason,
            trace=first.trace,
            usage=Usage.from_wire(data["usage"]) if data.get("usage") else None,
            request_id=request_id,
            choices=choices,
        )


class ReasoningDelta(_Model):
    """A piece of the trajectory (of choice ``index``)."""

    type: Literal["reasoning"] = "reasoning"
    text: str
    index: int = 0


class SearchStepEvent(_Model):
    """A search step (of choice ``index``), as it happens."""

    type: Literal["search_step"] = "search_step"
    step: SearchStep
    index: int = 0


class AnswerDelta(_Model):
    """A piece of the answer (of choice ``index``)."""

    type: Literal["answer"] = "answer"
    text: str
    index: int = 0


class Done(_Model):
    """The end of the stream: why it ended, the whole trace (choice 0's) and the usage (when asked
    for); with ``n`` > 1, every choice's in ``finish_reasons`` and ``traces``, by index."""

    type: Literal["done"] = "done"
    finish_reason: str | None = None
    #: vLLM's (search mode ``off``): the stop string that ended the text, or ``repetition_detected``.
    stop_reason: int | str | None = None
    trace: SearchTrace | None = None
    usage: Usage | None = None
    finish_reasons: dict[int, str] = Field(default_factory=dict)
    traces: dict[int, SearchTrace] = Field(default_factory=dict)

    @property
    def end_reason(self) -> str | None:
        """Why the search loop ended (``trace.end_reason``, as ``ChatResult.end_reason``)."""
        return self.trace.end_reason if self.trace else None


StreamEvent = ReasoningDelta | SearchStepEvent | AnswerDelta | Done
