"""bench/repetition.py: the request field each setting sends, the Latin square that gives every setting
the same questions, and the summary's ratios and answer comparison, on made-up cells."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bench.repetition import body, latin_square, report, rule, summarise
from service.protocol import ChatCompletionRequest
from service.settings import Settings


def test_each_setting_sends_what_the_service_reads() -> None:
    server = Settings().repetition
    assert rule("default") is None
    assert rule("off") == {"max_pattern_size": 0}
    assert rule("8") == {
        "max_pattern_size": 8,
        "min_pattern_size": server.min_pattern_size,
        "min_count": server.min_count,
    }
    with pytest.raises(ValueError, match="below the server's min_pattern_size"):
        rule(str(server.min_pattern_size - 1))
    # the bodies validate as the service's own request model, with the stop where the loop reads it
    for setting, size in (("16", 16), ("off", 0)):
        request = ChatCompletionRequest.model_validate(body("q", setting, 64))
        assert (
            request.repetition_detection is not None and request.repetition_detection.max_pattern_size == size
        )
    assert ChatCompletionRequest.model_validate(body("q", "default", None)).repetition_detection is None


@pytest.mark.parametrize("n", [2, 3, 5])
def test_the_square_gives_every_setting_every_block_once_and_every_round_every_block(n: int) -> None:
    settings = [f"s{i}" for i in range(n)]
    rounds = latin_square(settings, n)
    assert len(rounds) == n
    for cells in rounds:
        assert sorted(b for _, _, b in cells) == list(range(n))  # a round asks each block once
        assert sorted(i for _, i, _ in cells) == list(range(n))
    for i in range(n):
        assert sorted(b for cells in rounds for _, j, b in cells if j == i) == list(range(n))
    # the order rotates, so each setting runs first in exactly one round
    assert Counter(cells[0][1] for cells in rounds) == Counter(range(n))
    with pytest.raises(ValueError):
        latin_square(settings, n + 1)


def cell(
    index: int, setting: str, questions: list[str], answers: list[str], elapsed: float
) -> dict[str, Any]:
    return {
        "concurrency": 1,
        "index": index,
        "setting": setting,
        "questions": questions,
        "answers": answers,
        "em": [a == "yes" for a in answers],
        "elapsed_s": elapsed,
        "completion_tokens": 10 * len(questions),
        "prompt_tokens": 100.0 * len(questions),
        "prompt_tokens_cached": 70.0 * len(questions),
        "end_reasons": ["answer"] * (len(questions) - 1) + ["repetition" if setting == "8" else "answer"],
    }


def test_the_summary_sums_each_settings_time_and_compares_answers_question_by_question() -> None:
    settings = ["default", "default", "8"]
    cells = [
        cell(0, "default", ["a", "b"], ["yes", "no"], 4.0),
        cell(0, "default", ["c", "d"], ["yes", "yes"], 6.0),
        cell(1, "default", ["c", "d"], ["yes", "yes"], 5.0),
        cell(1, "default", ["a", "b"], ["yes", "no"], 5.0),
        cell(2, "8", ["a", "b"], ["yes", "yes"], 2.0),
        cell(2, "8", ["c", "d"], ["no", "yes"], 3.0),
    ]
    rows = summarise(cells, settings)
    assert [(r["setting"], r["copy"]) for r in rows] == [("default", 1), ("default", 2), ("8", 1)]
    assert [r["questions_per_s"] for r in rows] == pytest.approx([0.4, 0.4, 0.8])
    assert [r["ratio"] for r in rows] == pytest.approx([1.0, 1.0, 2.0])
    assert [r["same_answers"] for r in rows] == [4, 4, 2]  # b and c differ from the first setting's
    assert [r["em"] for r in rows] == pytest.approx([0.75, 0.75, 0.75])
    assert [r["repetition_stops"] for r in rows] == [0, 0, 2]
    assert [r["answered"] for r in rows] == [4, 4, 4]
    assert [r["prefilled_per_q"] for r in rows] == pytest.approx([30.0, 30.0, 30.0])
    payload = {
        "summary": rows,
        "runaway": [
            {
                "setting": "8",
                "case": "hi",
                "completion_tokens": 24,
                "end_reason": "repetition",
                "elapsed_s": 1.0,
            }
        ],
        "loadavg_start": (0.1, 0, 0),
        "loadavg_end": (1.5, 0, 0),
        "wall_s": 90.0,
    }
    text = report(payload)
    head = (
        "| c | setting | questions | q/s | ratio to the first | EM | answered | generated/q | prefilled/q |"
    )
    assert head + " same answers | stopped |" in text  # as many headers as cells
    assert "| 1 | default (copy 2) | 4 | 0.4 | 1.000x |" in text
    assert "| 1 | 8 | 4 | 0.8 | 2.000x | 75.0 | 4 | 10 | 30 | 2 of 4 | 2 |" in text
    assert "| 8 | hi | 24 | repetition | 1.0 |" in text
    assert text.endswith("load average 0.10 at the start, 1.50 at the end; 1.5 minutes.")
