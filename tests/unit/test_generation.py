"""What plain chat, text completions and the agent share (service/generation.py)."""

from __future__ import annotations

import math

import pytest

from service.generation import MIN_LOGPROB, clamp_logprob


@pytest.mark.parametrize("value", [-math.inf, math.nan, math.inf, -1e6, MIN_LOGPROB - 0.5])
def test_what_json_cannot_carry_is_the_lowest_logprob(value: float) -> None:
    assert clamp_logprob(value) == MIN_LOGPROB


@pytest.mark.parametrize("value", [0.0, -0.25, -42.0, MIN_LOGPROB])
def test_a_logprob_json_can_carry_is_kept(value: float) -> None:
    assert clamp_logprob(value) == value
