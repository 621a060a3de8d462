"""pass@k, maj@k and answered@k of K sampled answers to one question (the SSRL paper's first
experiment: how much the model knows against how reliably it says it).

Definitions (K samples of one question, k <= K):
- pass@k: the chance that at least one of k samples drawn without replacement from the K is right,
  the unbiased estimator 1 - C(K-c, k) / C(K, k) with c right samples (Chen et al., 2021).
- maj@k: the chance that the majority answer of k such samples is right, averaged exactly over all
  C(K, k) subsets. Votes are normalised answers (SQuAD normalisation, as exact match); a sample
  whose answer is missing or normalises to nothing does not vote; a subset where nobody votes scores
  0; a tie between t answers scores the share of them that are right (a tie broken uniformly at
  random, in expectation). Two spellings of a gold answer are two different votes.
- answered@k: the chance that at least one of k samples votes (1 - C(K-a, k) / C(K, k) with a
  voting samples); at k = 1 the share of trajectories that answered.
Each is a number per question; a report averages them over questions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb


@dataclass(frozen=True)
class Vote:
    """One sample's answer as a vote: its normalised answer (None: no vote) and whether it is right."""

    answer: str | None
    correct: bool

    def __post_init__(self) -> None:
        if self.answer is None and self.correct:
            raise ValueError("a sample without an answer cannot be right")


def ks_up_to(samples: int) -> list[int]:
    """k = 1, 2, 4, ... up to ``samples``, and ``samples`` itself when it is not a power of two."""
    if samples < 1:
        raise ValueError("samples must be >= 1")
    out = [1]
    while out[-1] * 2 <= samples:
        out.append(out[-1] * 2)
    return out if out[-1] == samples else [*out, samples]


def _check(n: int, k: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of samples ({n}), not {k}")


def at_least_one(n: int, good: int, k: int) -> float:
    """The chance that k of n samples, drawn without replacement, hold at least one of ``good``."""
    _check(n, k)
    if not 0 <= good <= n:
        raise ValueError(f"good must be between 0 and {n}, not {good}")
    if n - good < k:
        return 1.0
    return 1.0 - comb(n - good, k) / comb(n, k)


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k: 1 - C(n-c, k) / C(n, k)."""
    return at_least_one(n, correct, k)


def answered_at_k(votes: Sequence[Vote], k: int) -> float:
    return at_least_one(len(votes), sum(v.answer is not None for v in votes), k)


def maj_at_k(votes: Sequence[Vote], k: int) -> float:
    """maj@k averaged exactly over every k-subset of ``votes`` (see the module's definitions).

    Counted, not enumerated: for each possible winning count j, a dynamic programme over the answer
    classes counts the subsets in which no class has more than j votes, by how many right and wrong
    classes have exactly j; each such subset scores right / (right + wrong)."""
    n = len(votes)
    _check(n, k)
    counts = Counter(v.answer for v in votes if v.answer is not None)
    right = {v.answer for v in votes if v.answer is not None and v.correct}
    silent = n - sum(counts.values())
    total = 0.0
    for j in range(1, k + 1):
        # (picked, right classes at j, wrong classes at j) -> number of ways
        ways: dict[tuple[int, int, int], int] = {(0, 0, 0): 1}
        for answer, m in counts.items():
            grown: dict[tuple[int, int, int], int] = {}
            for (s, a, b), w in ways.items():
                for x in range(min(m, j, k - s) + 1):
                    key = (s + x, a + (x == j and answer in right), b + (x == j and answer not in right))
                    grown[key] = grown.get(key, 0) + w * comb(m, x)
            ways = grown
        for (s, a, b), w in ways.items():
            if a and k - s <= silent:
                total += w * comb(silent, k - s) * a / (a + b)
    return total / comb(n, k)


@dataclass(frozen=True)
class QuestionCurve:
    """One question's pass@k, maj@k and answered@k at each k of ``ks``."""

    ks: tuple[int, ...]
    pass_at: tuple[float, ...]
    maj_at: tuple[float, ...]
    answered_at: tuple[float, ...]


def question_curve(votes: Sequence[Vote], ks: Sequence[int]) -> QuestionCurve:
    correct = sum(v.correct for v in votes)
    return QuestionCurve(
        ks=tuple(ks),
        pass_at=tuple(pass_at_k(len(votes), correct, k) for k in ks),
        maj_at=tuple(maj_at_k(votes, k) for k in ks),
        answered_at=tuple(answered_at_k(votes, k) for k in ks),
    )


def mean_curve(curves: Sequence[QuestionCurve]) -> QuestionCurve:
    """The curves averaged over questions (all with the same ks)."""
    if not curves:
        raise ValueError("no question to average")
    ks = curves[0].ks
    if any(c.ks != ks for c in curves):
        raise ValueError("every question needs the same ks (the same number of samples)")

    def mean(values: list[tuple[float, ...]]) -> tuple[float, ...]:
        return tuple(sum(column) / len(values) for column in zip(*values, strict=True))

    return QuestionCurve(
        ks=ks,
        pass_at=mean([c.pass_at for c in curves]),
        maj_at=mean([c.maj_at for c in curves]),
        answered_at=mean([c.answered_at for c in curves]),
    )
