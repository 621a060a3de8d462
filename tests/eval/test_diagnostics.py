"""The figures behind EM on the natural sets: subject-naming queries and reading failures, per group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.diagnostics import diagnose, markdown, names_subject, read_subjects
from evals.scoring import gold_position


@pytest.mark.parametrize(
    ("query", "subject", "named"),
    [
        ("Mona Lisa painter", "Mona Lisa", True),
        ("mona lisa", "Mona Lisa", True),
        ("author", "Hamlet", False),  # the bare relation the old model wrote
        ("artist", "Mona Lisa", False),
        ("Kilimanjero location", "Mount Kilimanjaro", True),  # a typo copied from the question
        ("capital of kenya", "Kenya", True),
        ("telephone inventor", "telephone", True),
        ("philosopher", "The Republic", False),
    ],
)
def test_a_query_names_the_subject(query: str, subject: str, named: bool) -> None:
    assert names_subject(query, subject) is named


def _row(
    qid: str, mode: str, em: float, queries: list[str], gold_in_results: bool, at: list[int] | None = None
) -> dict[str, object]:
    info = (
        [{"source": "real", "has_gold": gold_in_results, **({"gold_at": at} if at is not None else {})}]
        if queries and mode == "real"
        else []
    )
    return {"id": qid, "mode": mode, "em": em, "answered": True, "queries": queries, "information": info}


def test_figures_per_mode_and_group(tmp_path: Path) -> None:
    dataset = tmp_path / "set.jsonl"
    dataset.write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                {"id": "a", "question": "who wrote hamlet", "subject": "Hamlet", "popularity": "well-known"},
                {"id": "b", "question": "who painted it", "subject": "Mona Lisa", "popularity": "well-known"},
                {
                    "id": "c",
                    "question": "where is lake x",
                    "subject": "Lake Tana",
                    "popularity": "less-known",
                },
            )
        )
    )
    subjects = read_subjects(dataset)
    rows = [
        _row("a", "real", 0.0, ["author"], True),  # bare relation, gold shown, misread
        _row("b", "real", 1.0, ["Mona Lisa painter"], True),
        _row("c", "real", 0.0, ["lake tana"], False),
        {"id": "zz", "mode": "real", "em": 1.0, "answered": True, "queries": ["x"], "information": []},
    ]
    table = {(r["mode"], r["group"]): r for r in diagnose(rows, subjects)}
    everything = table[("real", "all")]
    assert everything["questions"] == 3  # the row without a subject is left out
    assert everything["first_query_names_subject"] == pytest.approx(200 / 3)
    assert everything["gold_in_real_results"] == pytest.approx(200 / 3)
    assert everything["reading_failures"] == 1
    assert table[("real", "well-known")]["em"] == 50.0 and table[("real", "less-known")]["em"] == 0.0
    assert "| real | all | 3 | 33.3 |" in markdown(list(table.values()))


def test_reading_failures_say_where_the_gold_answer_was(tmp_path: Path) -> None:
    dataset = tmp_path / "set.jsonl"
    dataset.write_text(
        "\n".join(
            json.dumps({"id": i, "question": "q", "subject": "S", "popularity": "less-known"})
            for i in "abcde"
        )
    )
    subjects = read_subjects(dataset)
    rows = [
        _row("a", "real", 0.0, ["s"], True, [1, 1]),
        _row("b", "real", 0.0, ["s"], True, [1, 3]),
        _row("c", "real", 0.0, ["s"], True, [2, 1]),
        _row("d", "real", 1.0, ["s"], True, [3, 2]),  # read right: not a failure
        _row("e", "real", 0.0, ["s"], True, [1, 2]),
    ]
    everything = {(r["mode"], r["group"]): r for r in diagnose(rows, subjects)}[("real", "all")]
    assert everything["misread_where"] == {
        "first result, first sentence": 1,
        "first result, later sentence": 2,
        "lower result": 1,
    }
    assert "| 4 | 1 / 2 / 1 |" in markdown([everything])
    # Results written before the runner recorded where: the figure is unknown, not zero.
    old = diagnose([_row("a", "real", 0.0, ["s"], True)], subjects)[0]
    assert old["misread_where"] is None and markdown([old]).rstrip().endswith("| 1 | - |")


def test_gold_position_is_the_result_and_its_sentence() -> None:
    texts = [
        "Palembang is a city of Sumatra. It lies on both banks of the Musi River.",
        "The Musi River flows through Palembang.",
    ]
    assert gold_position(texts, ["Musi River", "Musi"]) == (1, 2)
    assert gold_position(texts[1:], ["musi"]) == (1, 1)
    assert gold_position(
        ["St. Petersburg is a city. ... It was founded by Peter the Great."], ["Peter the Great"]
    ) == (1, 2)
    assert gold_position(texts, ["Jakarta"]) is None
