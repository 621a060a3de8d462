import math

import pytest

from service.agent.uncertainty import query_uncertainty, span_tokens, token_entropy
from service.engine.base import TokenLogprob, TopLogprob


def entry(token: str, *logprobs: float) -> TokenLogprob:
    top = tuple(TopLogprob(f"t{i}", i, lp) for i, lp in enumerate(logprobs))
    return TokenLogprob(token, 0, logprobs[0], top)


def test_entropy_of_uniform_and_peaked_distributions() -> None:
    assert token_entropy(entry("a", math.log(0.5), math.log(0.5))) == pytest.approx(math.log(2))
    assert token_entropy(entry("a", 0.0)) == pytest.approx(0.0)
    peaked = token_entropy(entry("a", math.log(0.98), math.log(0.01), math.log(0.01)))
    flat = token_entropy(entry("a", math.log(0.34), math.log(0.33), math.log(0.33)))
    assert peaked < flat


def test_span_tokens_picks_the_tokens_overlapping_the_query() -> None:
    entries = [
        entry("<search>", 0.0),
        entry(" capital", -1.0),
        entry(" of", -1.0),
        entry(" France", -1.0),
        entry(" </search>", 0.0),
    ]
    text = "".join(e.token for e in entries)
    start = text.index("capital")
    end = text.index(" </search>")
    assert [e.token for e in span_tokens(entries, start, end)] == [" capital", " of", " France"]


def test_query_uncertainty_is_the_mean_over_query_tokens() -> None:
    sure = entry(" sure", 0.0, -30.0)
    unsure = entry(" maybe", math.log(0.5), math.log(0.5))
    entries = [entry("<search>", 0.0), sure, unsure, entry("</search>", 0.0)]
    text = "".join(e.token for e in entries)
    score = query_uncertainty(entries, len("<search>"), text.index("</search>"))
    assert score == pytest.approx((token_entropy(sure) + math.log(2)) / 2)
    assert query_uncertainty([], 0, 5) is None
