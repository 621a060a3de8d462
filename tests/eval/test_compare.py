"""evals.compare: two eval runs side by side, question by question."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evals.compare import compare, load, main


def row(qid: str, answer: str, em: float, query: str = "q", mode: str = "real") -> dict[str, Any]:
    return {
        "id": qid,
        "mode": mode,
        "question": f"question {qid}",
        "answer": answer,
        "em": em,
        "queries": [query],
    }


def write(folder: Path, rows: list[dict[str, Any]]) -> Path:
    folder.mkdir()
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_gains_losses_and_changed_answers_are_counted_on_shared_questions(tmp_path: Path) -> None:
    base = write(
        tmp_path / "base",
        [
            row("1", "Paris", 1.0),
            row("2", "Rome", 0.0),
            row("3", "Oslo", 1.0),
            row("4", "x", 0.0),
            row("5", "y", 1.0),
        ],
    )
    other = write(
        tmp_path / "other",
        [
            row("1", "Paris", 1.0),  # the same
            row("2", "Milan", 1.0, query="other"),  # gained, with another first query
            row("3", "Bergen", 0.0),  # lost
            row("4", "z", 0.0),  # a different wrong answer: differs, neither gained nor lost
            row("6", "w", 1.0),  # not in the baseline: left out
        ],
    )
    result = compare(load(base, "real"), load(other, "real"), "other")
    assert result.questions == 4
    assert result.base_em == 50.0 and result.em == 50.0
    assert [after["id"] for _, after in result.gained] == ["2"]
    assert [after["id"] for _, after in result.lost] == ["3"]
    assert result.answers_differ == 3 and result.first_queries_differ == 1


def test_the_last_row_of_a_question_counts_and_other_modes_are_ignored(tmp_path: Path) -> None:
    base = write(tmp_path / "base", [row("1", "a", 0.0), row("1", "b", 1.0), row("2", "c", 1.0, mode="self")])
    rows = load(base, "real")
    assert list(rows) == ["1"] and rows["1"]["answer"] == "b"


def test_the_cli_prints_the_table_and_the_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path / "base", [row("1", "Rome", 0.0), row("2", "Oslo", 1.0)])
    other = write(tmp_path / "other", [row("1", "Milan", 1.0), row("2", "Oslo", 1.0)])
    assert main([str(base), str(other / "results.jsonl"), "--list"]) == 0
    out = capsys.readouterr().out
    assert "| 2 | 50.0 | 100.0 | 1 | 0 | 1 | 0 |" in out
    assert "- 1 'question 1': 'Rome' -> 'Milan'" in out


def test_a_run_without_the_mode_or_shared_questions_is_a_clear_error(tmp_path: Path) -> None:
    base = write(tmp_path / "base", [row("1", "a", 1.0)])
    self_only = write(tmp_path / "self", [row("1", "a", 1.0, mode="self")])
    elsewhere = write(tmp_path / "elsewhere", [row("9", "a", 1.0)])
    with pytest.raises(SystemExit, match="no results in mode 'real'"):
        main([str(base), str(self_only)])
    with pytest.raises(SystemExit, match="no question in common"):
        main([str(base), str(elsewhere)])
