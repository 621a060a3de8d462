"""Exact match and F1 with SQuAD normalisation, max over the gold answers (shared/SSRL.md)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from service.search.snippets import GAP, sentences

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop a/an/the, fold white space."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    if prediction is None:
        return 0.0
    guess = normalize_answer(prediction)
    return float(any(guess == normalize_answer(g) for g in golds))


def _f1(prediction: str, gold: str) -> float:
    guess, truth = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(guess) & Counter(truth)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(guess), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str | None, golds: Sequence[str]) -> float:
    if prediction is None:
        return 0.0
    return max((_f1(prediction, g) for g in golds), default=0.0)


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """Whether a normalised gold answer occurs, as whole words, in the normalised text."""
    haystack = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(g)} " in haystack for g in golds if normalize_answer(g))


def gold_position(texts: Sequence[str], golds: Sequence[str]) -> tuple[int, int] | None:
    """Where a gold answer first shows in search results: (result, sentence of that result), both
    1-based; None when no result holds one. Tells a reading failure in the first result's lead
    sentence from one in a later sentence or a lower result."""
    for rank, text in enumerate(texts, 1):
        if contains_answer(text, golds):
            parts = sentences(text.replace(GAP, " "))
            return rank, next((i for i, part in enumerate(parts, 1) if contains_answer(part, golds)), 1)
    return None
