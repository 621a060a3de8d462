"""Training trajectories in exactly the served format.

The prompt, the observation layout and the cleaning of results come from the service itself
(``service.agent.prompts``), and the real results are what the local BM25 index returns for the
trajectory's own query, so a trained model sees at inference what it saw in training. A
trajectory is a list of segments: the chat messages of the prompt, then pieces of assistant text,
each either written by the model (trained on) or injected by the loop (masked out of the loss).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from service.agent.prompts import (
    SEARCH_R1_INSTRUCTION,
    SELF_SEARCH_INSTRUCTION,
    ObservationFormat,
    agent_messages,
    clean_results,
)
from service.search.base import Doc
from service.search.local import LocalIndex
from train.qa import QA, Fact

KINDS = ("real", "real_twice", "hybrid", "self", "direct")

_BEFORE = (
    "I need to find {need}.",
    "I am not sure about {need}, so I will search for it.",
    "To answer this I have to look up {need}.",
    "The question asks for {need}. Let me search.",
    "I should check {need} before answering.",
)
_FOUND = (
    'The result about {title} says: "{quote}" So the answer is {answer}.',
    'According to {title}: "{quote}" The answer is {answer}.',
    'The results say "{quote}" This gives {answer}.',
    'I found it. "{quote}" So {need} is {answer}.',
)
_MISSED = (
    "These results do not mention {need}. I will search again with a more specific query.",
    "None of the results gives {need}. Let me try a better search.",
    "The results are about something else; {need} is not there. I will search again.",
)
_KNOWN = (
    "I know this one: {need} is {answer}.",
    "This is well known: {need} is {answer}, no search needed.",
)


@dataclass(frozen=True)
class Segment:
    text: str
    trained: bool


@dataclass(frozen=True)
class Trajectory:
    id: str
    kind: str
    messages: list[dict[str, str]]
    segments: list[Segment]
    answers: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "messages": self.messages,
            "segments": [[s.text, s.trained] for s in self.segments],
            "answers": list(self.answers),
        }

    @classmethod
    def from_json(cls, row: dict[str, object]) -> Trajectory:
        segments = [Segment(str(t), bool(k)) for t, k in row["segments"]]  # type: ignore[union-attr]
        return cls(
            str(row["id"]),
            str(row["kind"]),
            list(row["messages"]),
            segments,  # type: ignore[arg-type]
            tuple(row["answers"]),  # type: ignore[arg-type]
        )


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", text) if s.strip()]


def quote(text: str, answer: str, words: int = 30) -> str:
    """The sentence of ``text`` that holds ``answer``, cut to about ``words`` words around it."""
    for sentence in sentences(text):
        if answer.lower() in sentence.lower():
            parts = sentence.split()
            if len(parts) <= words:
                return sentence
            at = next((i for i, p in enumerate(parts) if answer.split()[0].lower() in p.lower()), 0)
            start = max(0, min(at - words // 3, len(parts) - words))
            return " ".join(parts[start : start + words])
    return ""


class Builder:
    """Makes trajectories of each kind for facts, with the local index answering real searches."""

    def __init__(
        self,
        index: LocalIndex,
        observation: ObservationFormat,
        *,
        top_k: int,
        result_words: int,
        self_only: bool = False,
    ) -> None:
        self.index = index
        self.observation = observation
        self.top_k = top_k
        self.result_words = result_words
        self.self_only = self_only
        self._results: dict[str, list[Doc]] = {}

    def prefetch(self, queries: Sequence[str]) -> None:
        """Run many searches in one batch (bm25s is much faster batched)."""
        todo = sorted({q for q in queries if q not in self._results})
        for query, found in zip(todo, self.index.search_docs(todo, self.top_k), strict=True):
            self._results[query] = clean_results(found, self.top_k, self.result_words)

    def results(self, query: str) -> list[Doc]:
        if query not in self._results:
            self.prefetch([query])
        return self._results[query]

    def hit(self, query: str, fact: Fact) -> Doc | None:
        """The result of ``query`` that holds the fact's answer, if any."""
        answer = fact.answers[0].lower()
        for doc in self.results(query):
            if answer in doc.text.lower() and doc.title == fact.article:
                return doc
        return None

    def misses(self, query: str, fact: Fact) -> bool:
        return all(fact.answers[0].lower() not in d.text.lower() for d in self.results(query))

    # -- pieces of text ------------------------------------------------------------------------
    def _self_passage(self, fact: Fact, doc: Doc) -> str:
        """What the model writes as its own search result: the sentence holding the answer (and the
        article's first sentence when that is another one), short, in the served layout."""
        answer_sentence = quote(doc.text, fact.answers[0], words=40)
        first = sentences(doc.text)[0] if sentences(doc.text) else answer_sentence
        text = answer_sentence if first == answer_sentence else f"{first} {answer_sentence}"
        return self.observation.render([Doc(doc.title, " ".join(text.split()[:60]), doc.url)])

    @staticmethod
    def _search(think: str, query: str, lead: str = "") -> str:
        return f"{lead}<think> {think} </think>\n<search> {query} </search>"

    @staticmethod
    def _answer(think: str, answer: str) -> str:
        return f"<think> {think} </think>\n<answer> {answer} </answer>"

    def _found(self, rng: random.Random, fact: Fact, doc: Doc) -> str:
        answer = fact.answers[0]
        text = rng.choice(_FOUND).format(
            title=doc.title, quote=quote(doc.text, answer), answer=answer, need=fact.need
        )
        return self._answer(text, answer)

    # -- trajectories --------------------------------------------------------------------------
    def build(self, kind: str, qa: QA, rng: random.Random, queries: Sequence[str]) -> Trajectory | None:
        """A trajectory of ``kind`` for ``qa``, or None when the index cannot support it (no query
        of the fact finds it, or none misses it)."""
        fact = qa.fact
        good = [(q, d) for q in queries if (d := self.hit(q, fact)) is not None]
        before = rng.choice(_BEFORE).format(need=fact.need)
        instruction = SELF_SEARCH_INSTRUCTION if kind == "self" else SEARCH_R1_INSTRUCTION
        messages = [dict(m) for m in agent_messages(qa.question, instruction)]
        segments: list[Segment]
        if kind == "direct":
            think = rng.choice(_KNOWN).format(need=fact.need, answer=fact.answers[0])
            segments = [Segment(self._answer(think, fact.answers[0]), True)]
        elif kind == "self":
            if not good:
                return None
            query, doc = rng.choice(good)
            text = self._search(before, query) + self._self_passage(fact, doc) + self._found(rng, fact, doc)
            segments = [Segment(text, True)]
        elif kind == "real":
            if not good:
                return None
            query, doc = rng.choice(good)
            segments = [
                Segment(self._search(before, query), True),
                self._observed(query, fact, doc),
                Segment(self._found(rng, fact, doc), True),
            ]
        elif kind in ("real_twice", "hybrid"):
            # A first query that misses: one of the fact's own queries when the index misses it
            # (a natural miss), else a vague one; the model learns to read the results, not the query.
            natural = [q for q in queries if self.misses(q, fact)]
            vague = [q for q in vague_queries(fact) if self.misses(q, fact)]
            pool = natural if natural and (not vague or rng.random() < 0.5) else vague
            if not good or not pool:
                return None
            first = rng.choice(pool)
            query, doc = rng.choice(good)
            missed = rng.choice(_MISSED).format(need=fact.need)
            second = (
                self._observed(query, fact, doc)
                if kind == "real_twice"
                else Segment(self._self_passage(fact, doc), True)
            )
            segments = [
                Segment(self._search(before, first), True),
                self._observed(first, fact, None),
                Segment(self._search(missed, query), True),
                second,
                Segment(self._found(rng, fact, doc), True),
            ]
        else:
            raise ValueError(f"unknown trajectory kind {kind}")
        return Trajectory(f"{qa.id}-{kind}", kind, messages, segments, qa.answers)

    def _observed(self, query: str, fact: Fact, doc: Doc | None) -> Segment:
        """What the loop injects after ``</search>``: the index's results, masked. With
        ``self_only`` (SSRL's own training) the model writes every result block instead."""
        if self.self_only:
            if doc is None:
                results = self.results(query)[:1]
                return Segment(
                    self.observation.render([Doc(d.title, " ".join(d.text.split()[:40])) for d in results]),
                    True,
                )
            return Segment(self._self_passage(fact, doc), True)
        return Segment(self.observation.render(self.results(query)), False)


def vague_queries(fact: Fact) -> list[str]:
    """First queries that look like searches for the fact but are too vague to find it: part of the
    subject with the relation, or part of the subject alone. Never the relation alone: a model taught
    that writes bare relation queries ("capital", "nationality") at inference."""
    if fact.kind == "description":
        words = fact.subject.split()
        if len(words) < 4:
            return []
        return list(dict.fromkeys((_leading(words), " ".join(words[-2:]))))
    words = [w for w in re.findall(r"[A-Za-z]+", fact.subject) if len(w) > 3]
    if len(words) < 2:
        return []
    relation = fact.need.split(" of ")[0].replace("the ", "").strip()
    first, last = words[0], words[-1]
    out = [f"{first} {relation}", f"{relation} {first.lower()}", first, f"{last.lower()} {relation}"]
    return list(dict.fromkeys(q for q in out if q.strip()))


_GLUE = {"of", "the", "a", "an", "in", "and", "to", "for", "on", "by", "with", "from", "at"}


def _leading(words: list[str], content: int = 2) -> str:
    """The first words up to ``content`` of them that are not glue ("King of France", not "King of")."""
    out: list[str] = []
    for word in words:
        out.append(word)
        content -= word.lower() not in _GLUE
        if content == 0:
            break
    return " ".join(out)
