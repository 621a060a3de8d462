"""bench/speculation.py's comparison of two servers' greedy answers, and bench/_util.Server's clean-up
when its start is interrupted (a timeout's SIGTERM left a vLLM server running once)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from subprocess import Popen

import pytest

from bench._util import Server, free_port
from bench.client_mode import Outcome
from bench.speculation import compare, parted_at


def test_parted_at_is_the_first_differing_character() -> None:
    assert parted_at("<think> a </think>", "<think> a </think>") is None
    assert parted_at("<think> ab", "<think> ac") == 9
    assert parted_at("<think>", "<think> more") == 7  # one is a prefix of the other
    assert parted_at(None, "") is None


def test_compare_counts_answers_trajectories_and_em_changes() -> None:
    questions = [("q1", ["Tanzania"]), ("q2", ["Lima"]), ("q3", ["Leonardo da Vinci"])]
    off = [
        Outcome(1.0, "Tanzania", 1, "... says Tanzania. <answer> Tanzania </answer>"),
        Outcome(1.0, "Lima", 1, "... the capital is Lima. <answer> Lima </answer>"),
        Outcome(1.0, "Leonardo", 1, "... painted by Leonardo. <answer> Leonardo </answer>"),
    ]
    on = [
        off[0],
        Outcome(1.0, "Lima", 1, "... the capital city is Lima. <answer> Lima </answer>"),  # same answer
        Outcome(
            1.0,
            "Leonardo da Vinci",
            1,
            "... painted by Leonardo da Vinci. <answer> Leonardo da Vinci </answer>",
        ),
    ]
    result = compare(questions, off, on)
    assert (result["same_answer"], result["same_trajectory"], result["em_changed"]) == (2, 1, 1)
    second, third = result["differences"]
    assert (second["index"], second["same_answer"], second["em"]) == (1, True, [1.0, 1.0])
    assert second["then"] == ["is Lima. <answer> Lima </answer>", "city is Lima. <answer> Lima </answer>"]
    assert third["answers"] == ["Leonardo", "Leonardo da Vinci"] and third["em"] == [0.0, 1.0]
    assert third["context"].endswith("painted by Leonardo")


def test_a_server_interrupted_while_starting_is_stopped(tmp_path: Path) -> None:
    children: list[Popen[bytes]] = []

    class Interrupted(Server):
        def _wait_healthy(self, args: list[str], health: str, timeout: float) -> None:
            children.append(self.process)
            raise KeyboardInterrupt  # as sys.exit from a SIGTERM handler would, mid-start

    with pytest.raises(KeyboardInterrupt):
        Interrupted([sys.executable, "-c", "import time; time.sleep(120)"], free_port(), tmp_path / "s.log")
    deadline = time.monotonic() + 30
    while children[0].poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children[0].poll() is not None
