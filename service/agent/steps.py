"""The agent loop's own working state: the steps of a trajectory and the segments of text it is
made of, as the loop fills them in; the wire's ``SearchStep`` is built from a step (``wire()``),
never kept and changed in place."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.engine.base import TokenLogprob
from service.protocol import DocOut, SearchStep, StepSource, TextSpan
from service.search.base import Doc


def doc_out(doc: Doc) -> DocOut:
    return DocOut(title=doc.title, text=doc.text, url=doc.url, score=doc.score)


Span = tuple[int, int]


@dataclass
class Step:
    """A search of the trajectory as the loop works on it; ``wire()`` is what a client sees of it.
    Spans are character offsets in the loop's whole text (earlier requests' text included)."""

    index: int
    query: str
    source: StepSource
    uncertainty: float | None = None
    cached_tokens: int = 0
    backend: str | None = None
    docs: list[Doc] = field(default_factory=list)
    self_information: str | None = None
    latency_ms: float | None = None
    #: The results came from the search cache (no call to the backend).
    cache_hit: bool = False
    error: str | None = None
    search: Span | None = None
    information: Span | None = None

    def wire(self, origin: int) -> SearchStep:
        """The step on the wire, its spans counted from ``origin`` (where this response's text starts)."""

        def span(where: Span | None) -> TextSpan | None:
            return None if where is None else TextSpan(start=where[0] - origin, end=where[1] - origin)

        return SearchStep(
            index=self.index,
            query=self.query,
            source=self.source,
            backend=self.backend,
            results=[doc_out(d) for d in self.docs],
            self_information=self.self_information,
            latency_ms=self.latency_ms,
            cache_hit=self.cache_hit,
            uncertainty=self.uncertainty,
            cached_tokens=self.cached_tokens,
            error=self.error,
            search_span=span(self.search),
            information_span=span(self.information),
        )


@dataclass
class Segment:
    """One generation turn's text (or the client's prefill), from offset ``start`` of the loop's text."""

    start: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish: str | None = None
    stop: str | int | None = None
    cached: int = 0


def information_span(observation: str, at: int) -> Span:
    """The span of the <information> block inside an observation appended at ``at`` (the whole
    observation when its wrapper has no tags)."""
    open_ = observation.find("<information>")
    close = observation.rfind("</information>")
    if open_ < 0 or close < open_:
        return at, at + len(observation)
    return at + open_, at + close + len("</information>")
