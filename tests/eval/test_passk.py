"""pass@k, maj@k and answered@k against hand-computed cases, and maj@k against brute force."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from fractions import Fraction

import pytest

from evals.passk import (
    Vote,
    answered_at_k,
    ks_up_to,
    maj_at_k,
    mean_curve,
    pass_at_k,
    question_curve,
)

A, B, NONE = Vote("a", True), Vote("b", False), Vote(None, False)


def brute_maj(votes: list[Vote], k: int) -> float:
    """maj@k by enumerating every k-subset: the most voted answers; a tie scores its right share."""
    scores = []
    for subset in itertools.combinations(votes, k):
        counts = Counter(v.answer for v in subset if v.answer is not None)
        if not counts:
            scores.append(Fraction(0))
            continue
        top = max(counts.values())
        winners = [a for a, c in counts.items() if c == top]
        right = {v.answer for v in subset if v.correct}
        scores.append(Fraction(sum(w in right for w in winners), len(winners)))
    return float(sum(scores) / len(scores))


def test_ks_are_powers_of_two_up_to_the_samples() -> None:
    assert ks_up_to(1) == [1]
    assert ks_up_to(4) == [1, 2, 4]
    assert ks_up_to(16) == [1, 2, 4, 8, 16]
    assert ks_up_to(6) == [1, 2, 4, 6]
    with pytest.raises(ValueError):
        ks_up_to(0)


def test_pass_at_k_by_hand() -> None:
    # 4 samples, 2 right: pass@1 = 2/4; pass@2 = 1 - C(2,2)/C(4,2) = 1 - 1/6; pass@3 = 1 (only 2 wrong)
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    assert pass_at_k(4, 2, 3) == 1.0
    # 16 samples, 1 right: pass@k = k/16 (C(15,k)/C(16,k) = (16-k)/16)
    assert [pass_at_k(16, 1, k) for k in (1, 2, 4, 8, 16)] == pytest.approx(
        [1 / 16, 2 / 16, 4 / 16, 8 / 16, 1]
    )
    assert pass_at_k(8, 0, 8) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(4, 2, 5)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


def test_maj_at_k_by_hand() -> None:
    votes = [A, A, B, NONE]  # two right votes "a", one wrong "b", one sample with no answer
    # k=1: a, a score 1; b and the silent sample 0 -> 2/4
    assert maj_at_k(votes, 1) == pytest.approx(0.5)
    # k=2 (6 pairs): aa 1; ab twice, a tie, 1/2 each; a+silent twice 1 each; b+silent 0 -> 4/6
    assert maj_at_k(votes, 2) == pytest.approx(4 / 6)
    # k=3 (4 triples): aab 1; aa+silent 1; ab+silent twice, a tie, 1/2 each -> 3/4
    assert maj_at_k(votes, 3) == pytest.approx(3 / 4)
    # k=4: a has 2 votes, b 1 -> 1
    assert maj_at_k(votes, 4) == 1.0
    # pass@k is above maj@k: one right sample among k is enough for pass@k, not for maj@k
    assert pass_at_k(4, 2, 2) > maj_at_k(votes, 2)


def test_maj_at_k_ties_silence_and_gold_spellings() -> None:
    assert maj_at_k([NONE, NONE, NONE], 2) == 0.0  # nobody votes: wrong
    assert maj_at_k([A, B], 2) == pytest.approx(0.5)  # a tie between a right and a wrong answer
    assert maj_at_k([B, B, A, A, A], 5) == 1.0
    assert maj_at_k([B, B, B, A, A], 5) == 0.0  # the majority is wrong although pass@5 = 1
    usa, united, canada = Vote("usa", True), Vote("united states", True), Vote("canada", False)
    # two spellings of the gold answer are two votes: canada (2) beats each of them (1)
    assert maj_at_k([usa, united, canada, canada], 4) == 0.0
    # pairs: {usa, united} a tie of two right answers 1; usa|united with canada 1/2 each (4 pairs);
    # {canada, canada} 0 -> (1 + 2) / 6
    assert maj_at_k([usa, united, canada, canada], 2) == pytest.approx(3 / 6)


def test_a_silent_sample_cannot_be_right() -> None:
    with pytest.raises(ValueError):
        Vote(None, True)


def test_answered_at_k_by_hand() -> None:
    votes = [A, NONE, NONE, NONE]
    assert answered_at_k(votes, 1) == pytest.approx(1 / 4)
    assert answered_at_k(votes, 2) == pytest.approx(1 - 3 / 6)  # 1 - C(3,2)/C(4,2)
    assert answered_at_k(votes, 4) == 1.0
    assert answered_at_k([NONE, NONE], 2) == 0.0


def test_maj_at_k_equals_brute_force_on_random_cases() -> None:
    rng = random.Random(27)
    for _ in range(150):
        n = rng.randint(1, 9)
        answers = [rng.choice(["a", "b", "c", "d", None]) for _ in range(n)]
        right = {x for x in "abcd" if rng.random() < 0.35}
        votes = [Vote(a, a in right) for a in answers]
        for k in range(1, n + 1):
            assert maj_at_k(votes, k) == pytest.approx(brute_maj(votes, k), abs=1e-12), (votes, k)


def test_maj_at_k_of_sixteen_samples_is_cheap_and_bounded() -> None:
    answers = [str(i % 5) if i % 7 else None for i in range(16)]
    votes = [Vote(a, a == "0") for a in answers]
    curve = question_curve(votes, ks_up_to(16))
    assert curve.ks == (1, 2, 4, 8, 16)
    assert all(0.0 <= m <= p <= 1.0 for m, p in zip(curve.maj_at, curve.pass_at, strict=True))
    assert list(curve.pass_at) == sorted(curve.pass_at)  # pass@k never falls with k
    assert curve.maj_at[0] == pytest.approx(curve.pass_at[0])  # a single sample: the same


def test_curves_average_over_questions() -> None:
    one = question_curve([A, A], [1, 2])
    two = question_curve([B, NONE], [1, 2])
    mean = mean_curve([one, two])
    assert mean.pass_at == pytest.approx((0.5, 0.5))
    assert mean.maj_at == pytest.approx((0.5, 0.5))
    assert mean.answered_at == pytest.approx((0.75, 1.0))
    with pytest.raises(ValueError):
        mean_curve([one, question_curve([A], [1])])
    with pytest.raises(ValueError):
        mean_curve([])
