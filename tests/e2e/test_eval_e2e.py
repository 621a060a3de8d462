"""ssrl-eval against the live server on the embedded defaults (a few questions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.__main__ import EvalSettings, evaluate
from tests.e2e.launcher import RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)


async def test_eval_writes_results_table_and_plot(server: RunningServer, tmp_path: Path) -> None:
    settings = EvalSettings(
        base_url=server.base_url,
        api_key=server.api_key,
        limit=3,
        modes=["self", "real", "off"],
        max_tokens=48,
        output=tmp_path,
        progress=False,
    )
    await evaluate(settings)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted((r["mode"], r["id"]) for r in rows) == sorted(
        (m, r["id"]) for m in ("self", "real", "off") for r in rows if r["mode"] == "self"
    )
    assert all(r["error"] is None and r["tokens"] > 0 for r in rows)
    report = (tmp_path / "report.md").read_text()
    assert "| self | 3 |" in report and "| real | 3 |" in report and "| off | 3 |" in report
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


async def test_eval_samples_writes_pass_and_maj_at_k(server: RunningServer, tmp_path: Path) -> None:
    settings = EvalSettings(
        base_url=server.base_url,
        api_key=server.api_key,
        dataset=Path(__file__).resolve().parents[2] / "bench" / "data" / "natural-dev.jsonl",
        limit=2,
        modes=["self", "real"],
        samples=2,
        temperature=0.8,
        seed=1,
        max_tokens=256,
        output=tmp_path,
        progress=False,
    )
    await evaluate(settings)
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert sorted((r["mode"], len(r["samples"])) for r in rows) == [("real", 2)] * 2 + [("self", 2)] * 2
    assert all(r["error"] is None and r["tokens"] > 0 for r in rows)
    report = (tmp_path / "samples.md").read_text()
    for mode in ("self", "real"):
        for metric in ("pass@k", "maj@k", "answered@k"):
            assert f"| {mode} | 2 | {metric} % |" in report
    assert (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"
