"""Which documents an agent answer came from: the sources both wire shapes cite (chat completions'
``annotations`` and the Responses API's ``url_citation``), by one rule (docs/sources-and-responses.md):

1. the results of the trajectory's real searches (``real`` steps, and in ``client`` mode the results
   the caller sent) whose text, as the model read it, holds the answer (SQuAD normalisation: case,
   punctuation and a/an/the ignored; whole words), in the order the model read them, each URL once;
2. else the top result of the last real search that returned results.

Only results with a URL are cited (a result without one is skipped, and rule 2 takes the first
result of that search that has one). Information the model wrote itself (``self`` and ``fallback``
steps) is never cited, and neither is anything when there is no answer.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence

from service.protocol import DocOut, SearchStep, StepSource, UrlCitation, UrlCitationAnnotation

#: The steps whose results a search backend (or the caller's own search) wrote.
CITED_SOURCES: tuple[StepSource, ...] = ("real", "client")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    """Lower-case, punctuation dropped, a/an/the dropped, white space folded (SQuAD's rule)."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def _once(docs: Iterable[DocOut]) -> list[DocOut]:
    seen: set[str] = set()
    unique = []
    for doc in docs:
        if doc.url and doc.url not in seen:
            seen.add(doc.url)
            unique.append(doc)
    return unique


def cited_documents(steps: Sequence[SearchStep], answer: str | None) -> list[DocOut]:
    """The documents ``answer`` is cited to, by the module's rule; empty without an answer."""
    wanted = normalise(answer or "")
    if not wanted:
        return []
    searched = [step for step in steps if step.source in CITED_SOURCES]
    holding = _once(
        doc
        for step in searched
        for doc in step.results
        if f" {wanted} " in f" {normalise(f'{doc.title} {doc.text}')} "
    )
    if holding:
        return holding
    last = next((step for step in reversed(searched) if step.results), None)
    return _once(doc for doc in (last.results if last else []) if doc.url)[:1]


def chat_annotations(steps: Sequence[SearchStep], answer: str | None) -> list[UrlCitationAnnotation]:
    """The answer's sources as chat completions annotate them, each over the whole answer."""
    if answer is None:
        return []
    return [
        UrlCitationAnnotation(
            url_citation=UrlCitation(
                url=doc.url or "", title=doc.title or doc.url or "", start_index=0, end_index=len(answer)
            )
        )
        for doc in cited_documents(steps, answer)
    ]
