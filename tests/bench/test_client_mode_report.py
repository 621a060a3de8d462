"""bench/client_mode_report.py: means, ratios, run-to-run spread and issue 23's checks, on made-up rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.client_mode import plan
from bench.client_mode_report import report, same_answers, spread, summarise


def row(system: str, repeat: int, c: int, qps: float, p50: float, answers: list[str]) -> dict[str, Any]:
    return {
        "system": system,
        "repeat": repeat,
        "concurrency": c,
        "questions": len(answers),
        "questions_per_s": qps,
        "p50_s": p50,
        "p95_s": p50 * 2,
        "em": 0.5,
        "answered": 1.0,
        "searches_per_q": 1.0,
        "answers": answers,
        "loadavg_start": (0.4, 0.5, 0.6),
        "loadavg_end": (0.8, 0.5, 0.6),
        **({"draft_tokens": 100.0, "accepted_tokens": 60.0} if system.startswith("real") else {}),
        # token counters from /metrics; rows of earlier runs lack them
        **(
            {"prompt_tokens": 900.0, "prompt_tokens_cached": 500.0, "generation_tokens": 240.0}
            if system == "real"
            else {}
        ),
    }


def payload(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "args": {"dataset": "bench/data/ssrl-test.jsonl", "max_tokens": "1024", "repeat": "2"},
        "systems": {
            "vllm_loop": "loop",
            "vllm_loop_ngram": "loop + ngram",
            "real_off": "off",
            "real": "real",
        },
        "levels": {1: {"questions": 2}, 16: {"questions": 2}},
        "loadavg_start": (0.3, 0.3, 0.3),
        "loadavg_end": (0.9, 0.5, 0.4),
        "wall_s": 600.0,
        "rows": rows,
    }


ROWS = [
    # c=1: real is 2x the default loop and level with the loop given the same speculation
    row("vllm_loop", 1, 1, 0.20, 5.0, ["a", "b"]),
    row("vllm_loop", 2, 1, 0.22, 4.6, ["a", "b"]),
    row("vllm_loop_ngram", 1, 1, 0.40, 2.5, ["a", "b"]),
    row("vllm_loop_ngram", 2, 1, 0.44, 2.3, ["a", "b"]),
    row("real_off", 1, 1, 0.21, 4.8, ["a", "b"]),
    row("real_off", 2, 1, 0.21, 4.8, ["a", "b"]),
    row("real", 1, 1, 0.42, 2.4, ["a", "b"]),
    row("real", 2, 1, 0.42, 2.4, ["a", "x"]),
    # c=16: real is only 1.05x the loop (wanted 1.1x) and 20 % behind the ngram loop (spread 10 %)
    row("vllm_loop", 1, 16, 1.40, 9.0, ["c", "d"]),
    row("vllm_loop", 2, 16, 1.40, 9.0, ["c", "d"]),
    row("vllm_loop_ngram", 1, 16, 1.75, 8.0, ["c", "d"]),
    row("vllm_loop_ngram", 2, 16, 1.925, 8.0, ["c", "d"]),
    row("real_off", 1, 16, 1.40, 9.0, ["c", "d"]),
    row("real_off", 2, 16, 1.40, 9.0, ["c", "d"]),
    row("real", 1, 16, 1.47, 8.5, ["c", "d"]),
    row("real", 2, 16, 1.47, 8.5, ["c", "d"]),
]


def test_spread_is_max_over_min_minus_one() -> None:
    assert spread([1.0, 1.1]) == pytest.approx(0.1)
    assert spread([2.0]) == 0.0


def test_means_and_spreads_per_system_and_level() -> None:
    means = summarise(payload(ROWS))
    loop = means[("vllm_loop", 1)]
    assert loop["runs"] == 2 and loop["questions_per_s"] == pytest.approx(0.21)
    assert loop["qps_spread"] == pytest.approx(0.1) and loop["p50_s"] == pytest.approx(4.8)
    assert means[("vllm_loop_ngram", 16)]["qps_spread"] == pytest.approx(0.1)


def test_same_answers_are_counted_run_by_run() -> None:
    real = [r for r in ROWS if r["system"] == "real"]
    loop = [r for r in ROWS if r["system"] == "vllm_loop"]
    assert same_answers(real, loop) == (7, 8)  # run 2 at c=1 answered "x" once


def test_the_report_states_each_check_and_its_verdict() -> None:
    text = report(payload(ROWS))
    assert "- c=1: `real` (defaults) / `vllm_loop`: 2.00x q/s, 2.00x p50 (wanted >= 1.5x): yes" in text
    assert "- c=16: `real` (defaults) / `vllm_loop`: 1.05x q/s, 1.06x p50 (wanted >= 1.1x): NO" in text
    assert "- c=1: `real` / `vllm_loop_ngram` (same speculation): 1.00x q/s, run-to-run spread 10%" in text
    behind = "`vllm_loop_ngram` (same speculation): 0.80x q/s, run-to-run spread 10%: not behind by "
    assert behind + "more than the spread: NO" in text
    assert "- same answer, `real` vs `vllm_loop`: 7 / 8" in text
    # run 2 of `real` at c=1: ... same answer, accepted / drafted, prefilled / generated per question, load
    assert "| 2 | `real` | 1 | 2 | 0.42 | 2.4 | 4.8 | 0.5 | 1 | 1 | 1 / 2 | 60 / 100 | 200 / 120 |" in text
    assert "Load average (1 min) at the start 0.30, at the end 0.90; wall time 10.0 min." in text


def test_every_level_asks_its_own_questions() -> None:
    pool = [(f"q{i}", [str(i)]) for i in range(100)]
    levels = plan(pool, [1, 4, 16, 64], questions=30, serial=5)
    asked = [q for warmup, qs in levels.values() for q in [warmup, *(q for q, _ in qs)]]
    assert len(asked) == len(set(asked)) == 4 * 1 + 5 + 5 + 30 + 30
    assert [len(qs) for _, qs in levels.values()] == [5, 5, 30, 30]
    with pytest.raises(SystemExit, match="the dataset has 100 questions"):
        plan(pool, [1, 16, 64], questions=64, serial=5)


def test_the_ngram_baseline_is_vllms_server_with_the_services_speculative_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What vllm_loop_ngram adds to vllm_loop (CI's smoke run starts vllm_loop only)."""
    from bench import overhead
    from bench.client_mode import NGRAM, SYSTEMS

    started: list[list[str]] = []
    monkeypatch.setattr(overhead, "Server", lambda args, *a, **k: started.append(args))
    for name in ("vllm_loop", "vllm_loop_ngram"):
        overhead.vllm_server(tmp_path, tmp_path, speculative_config=SYSTEMS[name]().speculative_config)
    plain, ngram = ([a for i, a in enumerate(args) if i == 0 or args[i - 1] != "--port"] for args in started)
    flag = ngram.index("--speculative-config")
    assert json.loads(ngram[flag + 1]) == json.loads(json.dumps(NGRAM)) and NGRAM["method"] == "ngram"
    assert ngram[:flag] + ngram[flag + 2 :] == plain  # the same server otherwise (but its port)


def test_the_suffix_loop_is_a_same_speculation_baseline_too() -> None:
    """Since setup builds suffix decoding, `real` speculates as vllm_loop_suffix does: the report
    checks it against that loop as against the ngram one."""
    suffix = [
        row("vllm_loop_suffix", 1, 1, 0.45, 2.2, ["a", "b"]),
        row("vllm_loop_suffix", 2, 1, 0.44, 2.3, ["a", "b"]),
        row("vllm_loop_suffix", 1, 16, 1.47, 8.5, ["c", "d"]),
        row("vllm_loop_suffix", 2, 16, 1.47, 8.5, ["c", "d"]),
    ]
    data = payload([*ROWS, *suffix])
    data["systems"]["vllm_loop_suffix"] = "loop + suffix"
    text = report(data)
    check = "`real` / `vllm_loop_suffix` (same speculation): "
    # c=1: 0.42 / 0.445 = 0.94x, outside the suffix loop's 2 % spread
    assert f"- c=1: {check}0.94x q/s, run-to-run spread 2%: not behind by more than the spread: NO" in text
    assert f"- c=16: {check}1.00x q/s, run-to-run spread 0%: not behind by more than the spread: yes" in text
