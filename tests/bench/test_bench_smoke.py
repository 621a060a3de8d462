"""Small runs of each benchmark, so CI notices when one breaks (the figures come from full runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The runs that compare against vLLM's own server start two or three servers each (about 12 minutes
#: of the two workers' time): CI's 45 minutes do not hold them beside the suite, so they run when
#: asked (SSRL_BENCH_SMOKE=1 .venv/bin/python -m pytest tests/bench). The stress run stays in.
comparisons = pytest.mark.skipif(
    os.environ.get("SSRL_BENCH_SMOKE") != "1", reason="set SSRL_BENCH_SMOKE=1 to run (CI's time)"
)


def run_bench(module: str, out: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", module, "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "|" in done.stdout  # it printed its table
    return json.loads(out.read_text())


def test_search_path_smoke(tmp_path: Path) -> None:
    result = run_bench(
        "bench.search_path", tmp_path / "sp.json", "--requests", "40", "--concurrency", "8", "--repeat", "1"
    )
    baseline, unique, repeated = result["runs"][0]
    assert baseline["rps_ratio_to_baseline"] == 1.0
    assert unique["backend_calls"] == 40 and unique["cache_hits"] == 0
    assert repeated["backend_calls"] == 10  # ten distinct queries: the rest were cached or coalesced
    assert repeated["cache_hits"] + repeated["coalesced"] == 30


@pytest.mark.e2e
@comparisons
def test_overhead_smoke(tmp_path: Path) -> None:
    result = run_bench(
        "bench.overhead",
        tmp_path / "o.json",
        "--levels",
        "1",
        "2",
        "--requests-per-level",
        "1",
        "--max-tokens",
        "4",
        "--repeat",
        "1",
    )
    for row in result["runs"][0]:
        assert row["throughput_ratio"] > 0 and row["vllm"]["completion_tokens"] > 0


@pytest.mark.e2e
@comparisons
def test_loop_cost_smoke(tmp_path: Path) -> None:
    result = run_bench("bench.loop_cost", tmp_path / "l.json", "--questions", "2", "--max-tokens", "300")
    again = result["results"]["same questions again"]
    assert again and all(0.0 <= row["cached_share"] <= 1.0 for row in again)
    assert again[0]["cached_tokens"] > 0  # the second pass finds the first pass's prompt cached


@pytest.mark.e2e
def test_stress_smoke(tmp_path: Path) -> None:
    result = run_bench(
        "bench.stress",
        tmp_path / "s.json",
        "--concurrency",
        "12",
        "--duration",
        "20",
        "--server-concurrency",
        "8",
    )
    assert result["failures"] == 0 and result["engine_requests_left"] == 0 and result["server_alive"]
    assert result["outcomes"].get("ok", 0) > 0, result["outcomes"]
    assert set(result["outcomes"]) <= {"ok", "refused"}


@pytest.mark.e2e
@comparisons
def test_client_mode_smoke(tmp_path: Path) -> None:
    # vLLM's own server (the baseline) and this service; vllm_loop_ngram differs from vllm_loop by
    # its --speculative-config only (tests/bench/test_client_mode_report.py), so CI spares its start
    systems = ["vllm_loop", "real"]
    result = run_bench(
        "bench.client_mode",
        tmp_path / "c.json",
        *("--levels", "2", "--serial-questions", "2", "--repeat", "1", "--max-tokens", "400"),
        *("--systems", *systems),
    )
    rows = {row["system"]: row for row in result["rows"]}
    assert set(rows) == set(systems)
    for row in rows.values():
        assert row["questions"] == 2 and row["questions_per_s"] > 0 and row["searches_per_q"] >= 1
        assert len(row["loadavg_start"]) == len(row["loadavg_end"]) == 3
    assert rows["real"]["draft_tokens"] > 0  # the service speculates by default, and /metrics says so
    # the service's /metrics: prompt tokens (some held by the prefix cache) and generated tokens
    real = rows["real"]
    assert real["prompt_tokens"] > real["prompt_tokens_cached"] > 0 and real["generation_tokens"] > 0
    markdown = (tmp_path / "c.md").read_text()
    assert "| 1 | `real` | 2 | 2 |" in markdown and "same answer, `real` vs `vllm_loop`" in markdown
