"""The SSRL agent loop over an engine: self, real and entropy-guided search (shared/SSRL.md)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from service.agent.prompts import ObservationFormat, clean_results
from service.agent.tags import (
    ANSWER_CLOSE,
    CORRECTION,
    SEARCH_CLOSE,
    last_answer,
    queries_in,
    search_action,
)
from service.agent.uncertainty import query_uncertainty
from service.engine.base import Engine, SamplingOptions, TokenLogprob
from service.protocol import AgentMode, DocOut, GenerationTurn, SearchStep, SearchTrace
from service.search.base import Doc, SearchBackend, SearchError

logger = logging.getLogger(__name__)


def _doc_out(doc: Doc) -> DocOut:
    return DocOut(title=doc.title, text=doc.text, url=doc.url, score=doc.score)


class SearchFailedError(Exception):
    """A backend failed and the fallback policy is ``error``."""


@dataclass(frozen=True)
class LoopConfig:
    mode: AgentMode
    budget: int  # most tokens the trajectory may hold (generated + injected)
    context_room: int  # tokens left in the context after the prompt
    max_turns: int = 3
    top_k: int = 3
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    observation: ObservationFormat = field(default_factory=lambda: ObservationFormat("doc", "{results}"))
    backend_name: str | None = None
    entropy_rule: Literal["increase", "threshold"] = "increase"
    entropy_threshold: float = 1.0
    logprobs_k: int = 5
    fallback: Literal["self", "error"] = "self"
    result_words: int = 100


@dataclass(frozen=True)
class PastSearch:
    """A search the caller ran for an earlier request (search_mode ``client``): the assistant text that
    ended with it, its query, and the results it sent back (already cleaned)."""

    segment: str
    query: str
    docs: list[Doc]


@dataclass
class TextDelta:
    text: str


@dataclass
class StepEvent:
    step: SearchStep


@dataclass
class LoopResult:
    trajectory: str
    answer: str | None
    finish_reason: str
    trace: SearchTrace
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    #: search_mode client: the search the caller must run (finish_reason ``tool_calls``).
    tool_call_id: str | None = None
    tool_query: str | None = None


LoopEvent = TextDelta | StepEvent | LoopResult


@dataclass
class _Segment:
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish: str | None = None
    stop: str | int | None = None
    cached: int = 0


class AgentLoop:
    """One request's trajectory. ``run`` yields text deltas and steps, then a ``LoopResult``."""

    def __init__(
        self,
        engine: Engine,
        config: LoopConfig,
        backend: SearchBackend | None,
        request_id: str,
        session_key: str | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.backend = backend
        self.request_id = request_id
        #: The routing key of the trajectory (``X-Session-ID``): every turn goes to the same engine copy.
        self.session_key = session_key
        self.trace = SearchTrace(mode=config.mode, backend=config.backend_name if backend else None)
        self._text = ""
        #: What the model (or the client's prefill) wrote, without the text the loop injected:
        #: answers and self-written results are read from here, never from search results or the
        #: correction text (which itself mentions <answer> and </answer>).
        self._own: list[str] = []
        self._ids: list[int] = []
        #: Where this request's text starts (after the searches of earlier requests, in client mode).
        self._start = 0
        self._completion_tokens = 0
        self._previous_score: float | None = None

    # -- helpers -----------------------------------------------------------------------------
    def _append(self, text: str, token_ids: list[int] | None = None) -> TextDelta:
        self._text += text
        self._ids.extend(self.engine.encode(text) if token_ids is None else token_ids)
        return TextDelta(text)

    def _room(self) -> int:
        return min(self.config.budget, self.config.context_room) - len(self._ids)

    def _stops(self) -> tuple[str, ...]:
        searching = self.config.mode != "self" and len(self.trace.steps) < self.config.max_turns
        return (SEARCH_CLOSE, ANSWER_CLOSE) if searching else (ANSWER_CLOSE,)

    def _result(
        self, finish: str, end: str, detail: str | None = None, tool_query: str | None = None
    ) -> LoopResult:
        self.trace.end_reason = end  # type: ignore[assignment]
        self.trace.detail = detail
        self._fill_self_information()
        turns = self.trace.turns
        answers = [a for a in map(last_answer, self._own) if a is not None]
        return LoopResult(
            trajectory=self._text[self._start :],
            answer=answers[-1] if answers else None,
            finish_reason=finish,
            trace=self.trace,
            prompt_tokens=sum(t.prompt_tokens for t in turns),
            completion_tokens=self._completion_tokens,
            cached_tokens=sum(t.cached_tokens for t in turns),
            tool_call_id=None if tool_query is None else f"call_{uuid.uuid4().hex[:24]}",
            tool_query=tool_query,
        )

    def _fill_self_information(self) -> None:
        """Self-written <information> blocks, read back from the finished trajectory."""
        found = queries_in("".join(self._own))
        if self.config.mode == "self":
            self.trace.steps = [
                SearchStep(index=i, query=a.query, source="self", self_information=info)
                for i, (a, info) in enumerate(found)
            ]
            return
        for step, (_, info) in zip(self.trace.steps, found, strict=False):
            if step.source in ("self", "fallback"):
                step.self_information = info

    # -- the loop ----------------------------------------------------------------------------
    def _replay(self, history: Sequence[PastSearch]) -> None:
        """The trajectory of earlier requests (client mode): each assistant segment, then the results
        the caller sent, rendered as the ``real`` mode would have injected them."""
        for past in history:
            self._own.append(past.segment)
            self._append(past.segment)
            self.trace.steps.append(
                SearchStep(
                    index=len(self.trace.steps),
                    query=past.query,
                    source="client",
                    results=[_doc_out(d) for d in past.docs],
                )
            )
            self._append(self.config.observation.render(past.docs))
        self._start = len(self._text)

    async def run(
        self, prompt_ids: list[int], prefill: str = "", history: Sequence[PastSearch] = ()
    ) -> AsyncGenerator[LoopEvent, None]:
        pending: _Segment | None = None
        self._replay(history)
        if prefill:
            self._own.append(prefill)
            yield self._append(prefill)
            if self.config.mode != "self" and search_action(prefill) is not None:
                pending = _Segment(text=prefill, stop=SEARCH_CLOSE)
        while True:
            if pending is None:
                room = self._room()
                if room <= 0:
                    end = "token_budget" if self.config.budget <= self.config.context_room else "context_full"
                    yield self._result("length", end)
                    return
                segment = _Segment()
                async for delta in self._generate(prompt_ids, room, segment):
                    yield delta
                if segment.finish == "length":
                    yield self._result("length", "token_budget")
                    return
                if segment.stop == ANSWER_CLOSE or last_answer(segment.text) is not None:
                    yield self._result("stop", "answer")
                    return
                if self.config.mode == "self":
                    yield self._result("stop", "no_answer", "the model ended without an <answer>")
                    return
                pending = segment
            action = search_action(pending.text) if pending.stop == SEARCH_CLOSE else None
            if action is None:
                if self.trace.corrections >= 1:
                    yield self._result(
                        "stop", "malformed_action", "a second invalid action after the correction"
                    )
                    return
                self.trace.corrections += 1
                yield self._append(CORRECTION)
            elif self.config.mode == "client":
                step = SearchStep(
                    index=len(self.trace.steps),
                    query=action.query,
                    source="client",
                    cached_tokens=pending.cached,
                )
                self.trace.steps.append(step)
                yield StepEvent(step)
                yield self._result("tool_calls", "tool_call", tool_query=action.query)
                return
            else:
                score = (
                    query_uncertainty(pending.logprobs, action.start, action.end)
                    if pending.logprobs
                    else None
                )
                async for event in self._search(action.query, score, pending.cached):
                    yield event
            pending = None

    async def _generate(
        self, prompt_ids: list[int], room: int, segment: _Segment
    ) -> AsyncIterator[TextDelta]:
        turn = len(self.trace.turns)
        options = SamplingOptions(
            max_tokens=room,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=None if self.config.seed is None else (self.config.seed + turn) % 2**63,
            stop=self._stops(),
            include_stop_str_in_output=True,
            logprobs=self.config.logprobs_k if self.config.mode == "entropy" else None,
        )
        full_prompt = prompt_ids + self._ids
        generation = self.engine.generate(
            full_prompt, options, f"{self.request_id}-t{turn}", session_key=self.session_key
        )
        async for chunk in generation:
            segment.text += chunk.text
            segment.token_ids.extend(chunk.token_ids)
            if chunk.logprobs:
                segment.logprobs.extend(chunk.logprobs)
            segment.cached = max(segment.cached, chunk.cached_tokens)
            if chunk.finish_reason:
                segment.finish, segment.stop = chunk.finish_reason, chunk.stop_reason
            if chunk.text:
                yield TextDelta(chunk.text)
        self._text += segment.text
        self._own.append(segment.text)
        self._ids.extend(segment.token_ids)
        self._completion_tokens += len(segment.token_ids)
        self.trace.turns.append(
            GenerationTurn(
                prompt_tokens=len(full_prompt),
                cached_tokens=segment.cached,
                completion_tokens=len(segment.token_ids),
                stopped_by=str(segment.stop) if segment.stop else (segment.finish or "eos"),
            )
        )

    def _goes_real(self, score: float | None) -> bool:
        if self.config.mode == "real":
            return True
        if self.config.entropy_rule == "threshold":
            return score is not None and score > self.config.entropy_threshold
        first = not self.trace.steps
        previous = self._previous_score
        return first or (score is not None and previous is not None and score > previous)

    async def _search(self, query: str, score: float | None, cached: int) -> AsyncIterator[LoopEvent]:
        real = self.backend is not None and self._goes_real(score)
        self._previous_score = score
        step = SearchStep(
            index=len(self.trace.steps), query=query, source="self", uncertainty=score, cached_tokens=cached
        )
        self.trace.steps.append(step)
        if not real:
            yield StepEvent(step)
            return  # the model writes its own <information> in the next generation
        assert self.backend is not None
        step.backend = self.backend.name
        started = time.perf_counter()
        try:
            docs = await self.backend.search(query, self.config.top_k)
        except SearchError as exc:
            step.latency_ms = round((time.perf_counter() - started) * 1000, 2)
            step.source, step.error = "fallback", exc.kind
            logger.warning("search %s failed (%s); %s", self.backend.name, exc.kind, self.config.fallback)
            if self.config.fallback == "error":
                raise SearchFailedError(
                    f"the search backend '{self.backend.name}' failed: {exc.kind}"
                ) from exc
            yield StepEvent(step)
            return
        step.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        clean = clean_results(docs, self.config.top_k, self.config.result_words)
        step.source = "real"
        step.results = [_doc_out(d) for d in clean]
        yield StepEvent(step)
        yield self._append(self.config.observation.render(clean))
