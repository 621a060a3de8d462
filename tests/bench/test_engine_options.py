"""bench.engine_options: throughput as a ratio to the first configuration (same round and mode)."""

from __future__ import annotations

from bench.engine_options import DEFAULT_CONFIGS, parse_config, ratios


def _row(rnd: int, config: str, mode: str, qps: float) -> dict[str, object]:
    return {
        "round": rnd,
        "config": config,
        "mode": mode,
        "questions": 4,
        "seconds": 4 / qps,
        "questions_per_s": qps,
        "completion_tokens_per_s": 10 * qps,
        "loadavg_start": 0.5,
        "loadavg_end": 1.0,
    }


def test_ratios_are_to_the_baseline_of_the_same_round_and_mode() -> None:
    rows = [
        _row(1, "bf16", "off", 0.25),
        _row(1, "bf16", "real", 0.1),
        _row(1, "fp32", "off", 1.0),
        _row(1, "fp32", "real", 0.4),
        _row(2, "fp32", "off", 0.9),
        _row(2, "bf16", "off", 0.3),
    ]
    got = {(r[0], r[1], r[2]): r[6] for r in ratios(rows, "bf16")}
    assert got[(1, "bf16", "off")] == 1.0 and got[(1, "fp32", "off")] == 4.0
    assert got[(1, "fp32", "real")] == 4.0 and got[(2, "fp32", "off")] == 3.0
    assert ratios(rows, "bf16")[0][7] == "0.5 -> 1.0"


def test_the_default_pairs_change_one_setting_at_a_time() -> None:
    flags = [c.partition("=")[2].split() for c in DEFAULT_CONFIGS]
    assert all(len(f) == 4 for f in flags)
    assert {f[1] for f in flags} == {"bfloat16", "float32"} and {f[3] for f in flags} == {"off", "ngram"}


def test_a_config_sets_upper_case_words_in_the_environment_and_passes_the_rest_as_flags() -> None:
    assert parse_config("both=VLLM_CPU_OMP_THREADS_BIND=0-1 --engine.dtype float32") == (
        "both",
        ["--engine.dtype", "float32"],
        {"VLLM_CPU_OMP_THREADS_BIND": "0-1"},
    )
    assert parse_config("auto=") == ("auto", [], {})
    assert parse_config("x=--engine.extra '{\"a\": 1}'") == ("x", ["--engine.extra", '{"a": 1}'], {})
