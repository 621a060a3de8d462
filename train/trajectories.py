"""Training trajectories in exactly the served format.

The prompt, the observation layout and the cleaning of results come from the service itself
(``service.agent.prompts``), and the real results are what the local backend returns for the
trajectory's own query (BM25, then the same query-biased snippets), so a trained model sees at
inference what it saw in training. A trajectory is a list of segments: the chat messages of the
prompt, then pieces of assistant text, each either written by the model (trained on) or injected
by the loop (masked out of the loss).

What the trajectories teach: the first query names the subject (the question's own words, or
the subject with or without a relation word; never a bare relation); the answer is read from the
result that holds it wherever it ranks, the reasoning naming that result and quoting its
sentence; a search that misses is followed by a better one; a greeting or an instruction gets a
short direct answer with no search.
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
from service.search.snippets import GAP, sentences
from train.chat import CHAT_TURNS
from train.qa import QA, Fact, question_keywords

KINDS = ("real", "real_twice", "hybrid", "self", "chat")
#: The kinds whose search the local index answers (a rank of the answer is known).
REAL_KINDS = ("real", "real_twice")
#: The kind of the model's own trajectories, sampled by ``train.sample``.
OWN_KIND = "own"

_BEFORE = (
    "I need to find {need}.",
    "I am not sure about {need}, so I will search for it.",
    "To answer this I have to look up {need}.",
    "The question asks for {need}. Let me search.",
    "I should check {need} before answering.",
)
_FOUND = (
    'Doc {k} is about {title}: "{quote}" So the answer is {answer}.',
    'I need {need}. Doc {k} says: "{quote}" So it is {answer}.',
    'Doc {k} ({title}) says "{quote}" This gives {answer}.',
    '"{quote}" (Doc {k}) So {need} is {answer}.',
    'Looking for {need}: Doc {k} says "{quote}" The answer is {answer}.',
)
_MISSED = (
    "These results are not about {subject}; none gives {need}. I will search again with a more "
    "specific query.",
    "None of the results gives {need}. Let me try a better search.",
    "The results are about something else; {need} is not there. I will search again.",
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
    #: Rank (1-based) of the result the answer was read from, per real search that found it.
    ranks: tuple[int, ...] = ()
    #: Which sentence (1-based) of the result read the reasoning quotes; 0: none (a chat turn, or
    #: a trajectory from a file written before this was recorded).
    sentence: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "messages": self.messages,
            "segments": [[s.text, s.trained] for s in self.segments],
            "answers": list(self.answers),
            "ranks": list(self.ranks),
            "sentence": self.sentence,
        }

    @classmethod
    def from_json(cls, row: dict[str, object]) -> Trajectory:
        segments = [Segment(str(t), bool(k)) for t, k in row["segments"]]  # type: ignore[union-attr]
        return cls(
            str(row["id"]),
            str(row["kind"]),
            list(row["messages"]),  # type: ignore[call-overload]
            segments,
            tuple(row["answers"]),  # type: ignore[arg-type]
            tuple(row.get("ranks") or ()),  # type: ignore[arg-type]
            int(row.get("sentence") or 0),  # type: ignore[call-overload]
        )


def quote_position(text: str, answer: str) -> int:
    """Which sentence of ``text`` (1-based) holds ``answer``: the one ``quote`` quotes; 0 if none."""
    for number, sentence in enumerate(sentences(text.replace(GAP, " ")), 1):
        if answer.lower() in sentence.lower():
            return number
    return 0


def quote(text: str, answer: str, words: int = 30, *, to_answer: bool = False) -> str:
    """The sentence of ``text`` that holds ``answer``, cut to about ``words`` words around it; with
    ``to_answer``, the sentence up to and with the answer (its last ``words`` words), so that the
    answer is the last thing quoted and not the subject the sentence opens with (an answer that
    opens the sentence is quoted with what follows it, as without ``to_answer``)."""
    number = quote_position(text, answer)
    if not number:
        return ""
    sentence = sentences(text.replace(GAP, " "))[number - 1]
    start = sentence.lower().index(answer.lower())
    if to_answer and len(sentence[:start].split()) >= 3:  # not an answer the sentence opens with
        end = start + len(answer)
        return " ".join(sentence[:end].split()[-max(words, len(answer.split())) :])
    parts = sentence.split()
    if len(parts) <= words:
        return sentence
    at = next((i for i, p in enumerate(parts) if answer.split()[0].lower() in p.lower()), 0)
    start = max(0, min(at - words // 3, len(parts) - words))
    return " ".join(parts[start : start + words])


def query_forms(qa: QA, rng: random.Random) -> list[str]:
    """Queries that name the subject, in the order to try: the question's own words, the subject
    with a relation word, the subject alone (cased as the question is)."""
    fact = qa.fact
    lower = qa.question == qa.question.lower()
    subject = qa.subject.lower() if lower else qa.subject
    keywords = [f"{subject} {k}" for k in _keywords(fact)]
    forms = [
        question_keywords(qa.clean_question or qa.question),
        *rng.sample(keywords, len(keywords)),
        subject,
    ]
    draw = rng.random()
    first = 0 if draw < 0.45 else (1 if draw < 0.8 and keywords else len(forms) - 1)
    ordered = [forms[first], *(f for i, f in enumerate(forms) if i != first)]
    return list(dict.fromkeys(q for q in ordered if q.strip()))


def _keywords(fact: Fact) -> list[str]:
    from train.phrasings import RELATIONS

    if fact.kind in RELATIONS:
        return list(RELATIONS[fact.kind].keywords)
    # an open relation (train.gaps): its queries are the subject, then the subject with relation words
    return [q[len(fact.subject) :].strip() for q in fact.queries[1:] if q.startswith(fact.subject + " ")]


class Builder:
    """Makes trajectories of each kind for facts, with the local index answering real searches."""

    def __init__(
        self,
        index: LocalIndex,
        observation: ObservationFormat,
        *,
        top_k: int,
        result_words: int,
        snippet_words: int = 40,
        self_only: bool = False,
        quote_to_answer: float = 0.0,
    ) -> None:
        self.index = index
        self.observation = observation
        self.top_k = top_k
        self.result_words = result_words
        self.snippets = index.snippets(snippet_words)
        self.self_only = self_only
        #: Share of answers whose quote ends with the answer (``quote(to_answer=True)``).
        self.quote_to_answer = quote_to_answer
        self._results: dict[str, list[Doc]] = {}

    def prefetch(self, queries: Sequence[str]) -> None:
        """Run many searches in one batch (bm25s is much faster batched)."""
        todo = sorted({q for q in queries if q not in self._results})
        for query, found in zip(todo, self.index.search_docs(todo, self.top_k), strict=True):
            shown = self.snippets.docs(found, query)
            self._results[query] = clean_results(shown, self.top_k, self.result_words)

    def results(self, query: str) -> list[Doc]:
        if query not in self._results:
            self.prefetch([query])
        return self._results[query]

    def hit(self, query: str, fact: Fact) -> tuple[int, Doc] | None:
        """(rank, result) of ``query``'s result that is the fact's article and shows its answer."""
        answer = fact.answers[0].lower()
        for rank, doc in enumerate(self.results(query), 1):
            if doc.title == fact.article and answer in doc.text.lower() and quote(doc.text, fact.answers[0]):
                return rank, doc
        return None

    def misses(self, query: str, fact: Fact) -> bool:
        return all(not any(a.lower() in d.text.lower() for a in fact.answers) for d in self.results(query))

    # -- pieces of text ------------------------------------------------------------------------
    def _self_passage(self, doc: Doc) -> str:
        """What the model writes as its own search result: one result in the served layout."""
        return self.observation.render([doc])

    @staticmethod
    def _search(think: str, query: str, lead: str = "") -> str:
        return f"{lead}<think> {think} </think>\n<search> {query} </search>"

    @staticmethod
    def _answer(think: str, answer: str) -> str:
        return f"<think> {think} </think>\n<answer> {answer} </answer>"

    def _found(self, rng: random.Random, qa: QA, rank: int, doc: Doc) -> str:
        answer = qa.fact.answers[0]
        template = rng.choice(_FOUND)
        # Drawn only above 0, so that the data of a seed is what it was without the option.
        to_answer = self.quote_to_answer > 0 and rng.random() < self.quote_to_answer
        text = template.format(
            k=rank,
            title=doc.title,
            quote=quote(doc.text, answer, to_answer=to_answer),
            answer=answer,
            need=_need(qa),
        )
        return self._answer(text, answer)

    # -- trajectories --------------------------------------------------------------------------
    def build(self, kind: str, qa: QA, rng: random.Random) -> Trajectory | None:
        """A trajectory of ``kind`` for ``qa``, or None when the index cannot support it (no query
        naming the subject finds it, or, for two searches, none misses it)."""
        instruction = SELF_SEARCH_INSTRUCTION if kind == "self" else SEARCH_R1_INSTRUCTION
        messages = [dict(m) for m in agent_messages(qa.question, instruction)]
        forms = query_forms(qa, rng)
        self.prefetch(forms)
        hits = [(q, h) for q in forms if (h := self.hit(q, qa.fact)) is not None]
        if not hits:
            return None
        query, (rank, doc) = hits[0]
        before = rng.choice(_BEFORE).format(need=_need(qa))
        segments: list[Segment]
        if kind == "self" and not self.self_only:
            text = self._search(before, query) + self._self_passage(doc) + self._found(rng, qa, 1, doc)
            segments, ranks = [Segment(text, True)], (1,)
        elif kind == "self":  # SSRL's own setting: the model writes every result, as served
            text = self._search(before, query) + self._observed(query, doc).text
            segments, ranks = [Segment(text + self._found(rng, qa, rank, doc), True)], (rank,)
        elif kind == "real":
            segments = [
                Segment(self._search(before, query), True),
                self._observed(query, doc),
                Segment(self._found(rng, qa, rank, doc), True),
            ]
            ranks = (rank,)
        elif kind in ("real_twice", "hybrid"):
            misses = [q for q in forms if self.misses(q, qa.fact)]
            if not misses:
                return None
            first = misses[0]
            missed = rng.choice(_MISSED).format(need=_need(qa), subject=qa.subject)
            if kind == "real_twice":
                second, found_rank = self._observed(query, doc), rank
            else:
                second, found_rank = Segment(self._self_passage(doc), True), 1
            segments = [
                Segment(self._search(before, first), True),
                self._observed(first, None),
                Segment(self._search(missed, query), True),
                second,
                Segment(self._found(rng, qa, found_rank, doc), True),
            ]
            ranks = (found_rank,)
        else:
            raise ValueError(f"unknown trajectory kind {kind}")
        sentence = quote_position(doc.text, qa.fact.answers[0])
        return Trajectory(f"{qa.id}-{kind}", kind, messages, segments, qa.answers, ranks, sentence)

    def chat(self, rng: random.Random, number: int) -> Trajectory:
        """Something that is not a factual question, answered at once without a search."""
        said, think, reply = rng.choice(CHAT_TURNS)
        if rng.random() < 0.3:
            said = said.lower().rstrip("?!.")
        messages = [dict(m) for m in agent_messages(said, SEARCH_R1_INSTRUCTION)]
        text = self._answer(think, reply)
        return Trajectory(f"chat-{number}", "chat", messages, [Segment(text, True)], (reply,))

    def _observed(self, query: str, doc: Doc | None) -> Segment:
        """What the loop injects after ``</search>``: the index's results, masked. With
        ``self_only`` (SSRL's own training) the model writes the results itself, in the served
        layout and at the served length (every result of the query, not a short passage)."""
        rendered = self.observation.render(self.results(query))
        return Segment(rendered, self.self_only)


def _need(qa: QA) -> str:
    """What the reasoning says it looks for, naming the subject as the question does."""
    need = qa.fact.need
    if qa.subject and qa.subject != qa.fact.subject:
        need = need.replace(qa.fact.subject, qa.subject)
    return re.sub(r"\s+", " ", need).strip()
