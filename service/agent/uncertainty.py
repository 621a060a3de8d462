"""Uncertainty of a search query from the logprobs of its tokens (the entropy-guided mode)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from service.engine.base import TokenLogprob


def token_entropy(entry: TokenLogprob) -> float:
    """Entropy (nats) of the next-token distribution, from its top alternatives renormalised.

    With no alternatives it falls back to the chosen token's surprise, -log p.
    """
    logprobs = [t.logprob for t in entry.top if math.isfinite(t.logprob)]
    if not logprobs:
        return -entry.logprob if math.isfinite(entry.logprob) else 0.0
    peak = max(logprobs)
    weights = [math.exp(lp - peak) for lp in logprobs]
    total = sum(weights)
    return -sum((w / total) * math.log(w / total) for w in weights if w > 0)


def span_tokens(entries: Sequence[TokenLogprob], start: int, end: int) -> list[TokenLogprob]:
    """The tokens whose text overlaps characters [start, end) of the text they decode to."""
    chosen: list[TokenLogprob] = []
    position = 0
    for entry in entries:
        token_end = position + len(entry.token)
        if token_end > start and position < end:
            chosen.append(entry)
        position = token_end
        if position >= end:
            break
    return chosen


def query_uncertainty(entries: Sequence[TokenLogprob], start: int, end: int) -> float | None:
    """Mean token entropy over the query's tokens; None when there are no logprobs for it."""
    tokens = span_tokens(entries, start, end)
    if not tokens:
        return None
    return sum(token_entropy(t) for t in tokens) / len(tokens)
