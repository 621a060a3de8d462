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


class SearchStep(_Model):
    """One search of the trajectory and who answered it: ``self``, ``real``, ``fallback`` or
    ``client`` (the caller's own search function)."""

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


class ChatResult(_Model):
    """A finished chat: the answer, the trajectory that led to it, and its search trace."""

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
        choice = data["choices"][0]
        message = choice.get("message") or {}
        trace = data.get("search_trace")
        return cls(
            id=data["id"],
            model=data["model"],
            answer=message.get("content"),
            trajectory=message.get("reasoning_content"),
            finish_reason=choice.get("finish_reason"),
            stop_reason=choice.get("stop_reason"),
            trace=SearchTrace.model_validate(trace) if trace else None,
            usage=Usage.from_wire(data["usage"]) if data.get("usage") else None,
            request_id=request_id,
        )


class ReasoningDelta(_Model):
    """A piece of the trajectory."""

    type: Literal["reasoning"] = "reasoning"
    text: str


class SearchStepEvent(_Model):
    """A search step, as it happens."""

    type: Literal["search_step"] = "search_step"
    step: SearchStep


class AnswerDelta(_Model):
    """A piece of the answer."""

    type: Literal["answer"] = "answer"
    text: str


class Done(_Model):
    """The end of the stream: why it ended, the whole trace and the usage (when asked for)."""

    type: Literal["done"] = "done"
    finish_reason: str | None = None
    #: vLLM's (search mode ``off``): the stop string that ended the text, or ``repetition_detected``.
    stop_reason: int | str | None = None
    trace: SearchTrace | None = None
    usage: Usage | None = None

    @property
    def end_reason(self) -> str | None:
        """Why the search loop ended (``trace.end_reason``, as ``ChatResult.end_reason``)."""
        return self.trace.end_reason if self.trace else None


StreamEvent = ReasoningDelta | SearchStepEvent | AnswerDelta | Done
