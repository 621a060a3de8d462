"""What the loop reports: its steps, its generation turns, and why it ended."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from service.search.base import Doc

StepSource = Literal["self", "real", "fallback"]
EndReason = Literal["answer", "token_budget", "malformed_action", "no_answer", "context_full"]


class DocOut(BaseModel):
    title: str
    text: str
    url: str | None = None
    score: float | None = None

    @classmethod
    def of(cls, doc: Doc) -> DocOut:
        return cls(title=doc.title, text=doc.text, url=doc.url, score=doc.score)


class SearchStep(BaseModel):
    """One search action of the trajectory and who answered it."""

    index: int
    query: str
    source: StepSource = Field(
        description="self: the model wrote the <information>; real: a backend did; "
        "fallback: the backend failed and the model wrote it"
    )
    backend: str | None = None
    results: list[DocOut] = Field(default_factory=list)
    #: The <information> text the model wrote itself (self and fallback steps).
    self_information: str | None = None
    latency_ms: float | None = None
    uncertainty: float | None = None
    #: Prompt tokens served from the prefix cache in the generation turn that wrote the query.
    cached_tokens: int = 0
    error: str | None = None


class GenerationTurn(BaseModel):
    """One call to the engine: the prompt it re-submitted, and how much of it was cached."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    stopped_by: str


class SearchTrace(BaseModel):
    mode: str
    backend: str | None = None
    steps: list[SearchStep] = Field(default_factory=list)
    turns: list[GenerationTurn] = Field(default_factory=list)
    corrections: int = 0
    end_reason: EndReason | None = None
    detail: str | None = None
