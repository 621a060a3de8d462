"""The SSRL agent loop over an engine: self, real and entropy-guided search (shared/SSRL.md)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from service.agent.prompts import ObservationFormat, clean_results
from service.agent.steps import Segment, Span, Step, information_span
from service.agent.tags import (
    ANSWER_CLOSE,
    CORRECTION,
    SEARCH_CLOSE,
    information_at,
    last_answer,
    search_action,
    searches_in,
)
from service.agent.uncertainty import query_uncertainty
from service.engine.base import Engine, RepetitionStop, SamplingOptions
from service.protocol import (
    AgentMode,
    EndReason,
    GenerationTurn,
    SearchStep,
    SearchTrace,
)
from service.search.base import CachingBackend, Doc, SearchBackend, SearchError

logger = logging.getLogger(__name__)


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
    #: Ends a generation turn that repeats itself (end reason ``repetition``); None: no such stop.
    repetition: RepetitionStop | None = None


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
    #: The step as the client sees it at this moment (a snapshot of the loop's own state).
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
        self._text = ""
        #: What the model (or the client's prefill) wrote, without the text the loop injected:
        #: answers are read from here, never from search results or the correction text (which
        #: itself mentions <answer> and </answer>).
        self._own: list[str] = []
        self._ids: list[int] = []
        #: Where this request's text starts (after the searches of earlier requests, in client mode).
        self._start = 0
        self._completion_tokens = 0
        self._previous_score: float | None = None
        self._steps: list[Step] = []
        self._turns: list[GenerationTurn] = []
        self._corrections = 0

    # -- helpers -----------------------------------------------------------------------------
    def _append(self, text: str, token_ids: list[int] | None = None) -> TextDelta:
        self._text += text
        self._ids.extend(self.engine.encode(text) if token_ids is None else token_ids)
        return TextDelta(text)

    def _room(self) -> int:
        return min(self.config.budget, self.config.context_room) - len(self._ids)

    def _stops(self) -> tuple[str, ...]:
        searching = self.config.mode != "self" and len(self._steps) < self.config.max_turns
        return (SEARCH_CLOSE, ANSWER_CLOSE) if searching else (ANSWER_CLOSE,)

    def _event(self, step: Step) -> StepEvent:
        return StepEvent(step.wire(self._start))

    def _result(
        self, finish: str, end: EndReason, detail: str | None = None, tool_query: str | None = None
    ) -> LoopResult:
        self._read_own_information()
        trace = SearchTrace(
            mode=self.config.mode,
            backend=self.config.backend_name if self.backend else None,
            steps=[step.wire(self._start) for step in self._steps],
            turns=list(self._turns),
            corrections=self._corrections,
            end_reason=end,
            detail=detail,
        )
        answers = [a for a in map(last_answer, self._own) if a is not None]
        return LoopResult(
            trajectory=self._text[self._start :],
            answer=answers[-1] if answers else None,
            finish_reason=finish,
            trace=trace,
            prompt_tokens=sum(t.prompt_tokens for t in self._turns),
            completion_tokens=self._completion_tokens,
            cached_tokens=sum(t.cached_tokens for t in self._turns),
            tool_call_id=None if tool_query is None else f"call_{uuid.uuid4().hex[:24]}",
            tool_query=tool_query,
        )

    def _read_own_information(self) -> None:
        """The <information> blocks the model wrote itself, read back from the finished trajectory:
        in self mode every search of its one generation; otherwise the block right after the search
        of a self or fallback step (nothing was injected there)."""
        if self.config.mode == "self":
            start = self._start
            self._steps = [
                Step(
                    index=i,
                    query=action.query,
                    source="self",
                    self_information=info.text if info else None,
                    search=(start + action.block_start, start + action.block_end),
                    information=None if info is None else (start + info.start, start + info.end),
                )
                for i, (action, info) in enumerate(searches_in(self._text[start:]))
            ]
            return
        for step in self._steps:
            if step.source in ("self", "fallback") and step.search is not None:
                info = information_at(self._text, step.search[1])
                if info is not None:
                    step.self_information, step.information = info.text, (info.start, info.end)

    # -- the loop ----------------------------------------------------------------------------
    def _replay(self, history: Sequence[PastSearch]) -> None:
        """The trajectory of earlier requests (client mode): each assistant segment, then the results
        the caller sent, rendered as the ``real`` mode would have injected them."""
        for past in history:
            self._own.append(past.segment)
            self._append(past.segment)
            self._steps.append(Step(len(self._steps), past.query, "client", docs=list(past.docs)))
            self._append(self.config.observation.render(past.docs))
        self._start = len(self._text)

    async def run(
        self, prompt_ids: list[int], prefill: str = "", history: Sequence[PastSearch] = ()
    ) -> AsyncGenerator[LoopEvent, None]:
        pending: Segment | None = None
        self._replay(history)
        if prefill:
            start = len(self._text)
            self._own.append(prefill)
            yield self._append(prefill)
            if self.config.mode != "self" and search_action(prefill) is not None:
                pending = Segment(start=start, text=prefill, stop=SEARCH_CLOSE)
        while True:
            if pending is None:
                room = self._room()
                if room <= 0:
                    full = self.config.budget > self.config.context_room
                    end: EndReason = "context_full" if full else "token_budget"
                    yield self._result("length", end)
                    return
                segment = Segment(start=len(self._text))
                async for delta in self._generate(prompt_ids, room, segment):
                    yield delta
                if segment.finish == "length":
                    yield self._result("length", "token_budget")
                    return
                if segment.finish == "repetition":
                    # cut before the model finished, as the budget cuts: ``length`` for OpenAI clients
                    yield self._result("length", "repetition", "the model repeated itself; stopped early")
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
                if self._corrections >= 1:
                    yield self._result(
                        "stop", "malformed_action", "a second invalid action after the correction"
                    )
                    return
                self._corrections += 1
                yield self._append(CORRECTION)
                pending = None
                continue
            search = (pending.start + action.block_start, pending.start + action.block_end)
            if self.config.mode == "client":
                step = Step(len(self._steps), action.query, "client", cached_tokens=pending.cached)
                step.search = search
                self._steps.append(step)
                yield self._event(step)
                yield self._result("tool_calls", "tool_call", tool_query=action.query)
                return
            logprobs = pending.logprobs
            score = query_uncertainty(logprobs, action.start, action.end) if logprobs else None
            async for event in self._search(action.query, score, pending.cached, search):
                yield event
            pending = None

    async def _generate(self, prompt_ids: list[int], room: int, segment: Segment) -> AsyncIterator[TextDelta]:
        turn = len(self._turns)
        options = SamplingOptions(
            max_tokens=room,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=None if self.config.seed is None else (self.config.seed + turn) % 2**63,
            stop=self._stops(),
            include_stop_str_in_output=True,
            logprobs=self.config.logprobs_k if self.config.mode == "entropy" else None,
            repetition=self.config.repetition,
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
        self._turns.append(
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
        first = not self._steps
        previous = self._previous_score
        return first or (score is not None and previous is not None and score > previous)

    async def _search(
        self, query: str, score: float | None, cached: int, search: Span
    ) -> AsyncIterator[LoopEvent]:
        real = self.backend is not None and self._goes_real(score)
        self._previous_score = score
        step = Step(len(self._steps), query, "self", uncertainty=score, cached_tokens=cached, search=search)
        self._steps.append(step)
        if not real:
            yield self._event(step)
            return  # the model writes its own <information> in the next generation
        assert self.backend is not None
        step.backend = self.backend.name
        started = time.perf_counter()
        backend = self.backend
        try:
            docs = backend.cached(query, self.config.top_k) if isinstance(backend, CachingBackend) else None
            step.cache_hit = docs is not None
            if docs is None:
                docs = await backend.search(query, self.config.top_k)
        except SearchError as exc:
            step.latency_ms = round((time.perf_counter() - started) * 1000, 2)
            step.source, step.error = "fallback", exc.kind
            logger.warning("search %s failed (%s); %s", self.backend.name, exc.kind, self.config.fallback)
            if self.config.fallback == "error":
                raise SearchFailedError(
                    f"the search backend '{self.backend.name}' failed: {exc.kind}"
                ) from exc
            yield self._event(step)
            return
        step.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        step.source = "real"
        step.docs = clean_results(docs, self.config.top_k, self.config.result_words)
        observation = self.config.observation.render(step.docs)
        step.information = information_span(observation, len(self._text))
        yield self._event(step)
        yield self._append(observation)
