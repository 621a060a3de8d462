"""ssrl-eval: scoring, datasets, the resumable runner and the report, against the in-process app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.datasets import QAItem, load_dataset, load_fanoutqa_dev, load_jsonl
from evals.report import markdown, plot, summarise
from evals.runner import read_results, run_eval
from evals.scoring import exact_match, f1_score, normalize_answer
from service.engine.scripted import ScriptedEngine, search_then
from service.settings import Settings
from ssrl_client import AsyncClient
from tests.conftest import build_app, running


def test_squad_normalisation_and_scores() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple, a pear and the plum.") == "apple pear and plum"
    assert exact_match("the Paris", ["paris", "Lyon"]) == 1.0
    assert exact_match("Paris, France", ["Paris"]) == 0.0
    assert exact_match(None, ["Paris"]) == 0.0
    assert f1_score("Paris France", ["Paris"]) == pytest.approx(2 / 3)
    assert f1_score("Berlin", ["Paris", "Berlin Germany"]) == pytest.approx(2 / 3)
    assert f1_score("", ["Paris"]) == 0.0


def test_both_jsonl_forms_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"id": "a", "question": "Q1?", "golden_answers": ["x", "y"]}),
                json.dumps({"question": "Q2?", "answer": "z"}),
                "{broken",
                json.dumps({"question": "", "answer": "z"}),
                json.dumps({"question": "Q5?"}),
                json.dumps({"id": "a", "question": "dup?", "answer": "d"}),
                json.dumps({"question": "Q7?", "answer": 1912}),
            ]
        )
        + "\n"
    )
    items, bad = load_jsonl(path)
    assert items == [
        QAItem("a", "Q1?", ("x", "y")),
        QAItem("line-2", "Q2?", ("z",)),
        QAItem("line-7", "Q7?", ("1912",)),
    ]
    assert [n for n, _ in bad] == [3, 4, 5, 6]
    assert "duplicate" in bad[3][1]


def test_the_embedded_dataset() -> None:
    items = load_fanoutqa_dev()
    assert len(items) == 1710
    assert all(i.question.endswith("?") or i.question for i in items)
    assert items == load_dataset(None)[0]


script = search_then("<answer> Right </answer>", search="<search> batting hand </search>", plain="Right")


async def test_run_is_resumable_and_reports(tmp_path: Path) -> None:
    items = [QAItem("1", "What hand?", ("Right",)), QAItem("2", "Other hand?", ("Left",))]
    engine = ScriptedEngine(script)
    app = build_app(Settings(cache_dir=tmp_path), engine=engine)
    results = tmp_path / "out" / "results.jsonl"
    async with running(app) as http:
        client = AsyncClient(base_url="http://t", http_client=http)
        options = {"max_tokens": 64}
        modes = ["self", "real", "off"]
        asked = await run_eval(client, items, modes, results, concurrency=3, options=options, progress=False)
        calls = len(engine.calls)
        again = await run_eval(client, items, modes, results, concurrency=3, options=options, progress=False)
    assert (asked, again) == (6, 0) and len(engine.calls) == calls  # nothing asked twice
    rows = read_results(results)
    assert len(rows) == 6 and len(results.read_text().splitlines()) == 6
    real = {r["id"]: r for r in rows if r["mode"] == "real"}
    assert real["1"]["em"] == 1.0 and real["2"]["em"] == 0.0 and real["1"]["real_calls"] == 1
    # each real search records where a gold answer was in its results (none here); self-written ones do not
    assert real["1"]["information"] == [{"source": "real", "has_gold": False, "gold_at": None}]
    assert all("gold_at" not in i for r in rows if r["mode"] == "self" for i in r["information"])
    summaries = {s.mode: s for s in summarise(rows, ["self", "real", "off"])}
    assert summaries["real"].exact_match == 50.0 and summaries["real"].real_calls == 1.0
    assert summaries["self"].real_calls == 0.0
    assert summaries["off"].answer_rate == 100.0
    table = markdown(list(summaries.values()), "t", concurrency=3)
    assert "| real | 2 | 50.0 |" in table
    # under the title, what to expect of greedy answers asked side by side
    assert table.splitlines()[2].startswith("> Greedy decoding, up to 3 question(s) in flight")
    assert "Greedy" not in markdown(list(summaries.values()), "t")
    plot(list(summaries.values()), tmp_path / "p.png", "t")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


async def test_the_report_of_a_natural_set_adds_figures_per_popularity(tmp_path: Path) -> None:
    """ssrl-eval's report.md: a row per mode, and for a set with subjects and popularity (as
    bench/data/natural-*.jsonl) the diagnostics per group, from the rows the runner wrote."""
    from evals.__main__ import EvalSettings, write_report

    dataset = tmp_path / "natural.jsonl"
    dataset.write_text(
        json.dumps(
            {
                "id": "1",
                "question": "what hand",
                "golden_answers": ["Right"],
                "subject": "batting hand",
                "popularity": "well-known",
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "2",
                "question": "other hand",
                "golden_answers": ["Left"],
                "subject": "Lake Tana",
                "popularity": "less-known",
            }
        )
        + "\n"
    )
    items, _ = load_dataset(dataset)
    results = tmp_path / "out" / "results.jsonl"
    async with running(build_app(Settings(cache_dir=tmp_path), engine=ScriptedEngine(script))) as http:
        client = AsyncClient(base_url="http://t", http_client=http)
        await run_eval(
            client, items, ["real"], results, concurrency=2, options={"max_tokens": 64}, progress=False
        )
    settings = EvalSettings(dataset=dataset, modes=["real"], output=tmp_path / "out", concurrency=2)
    table = write_report(settings, items, read_results(results))
    assert (tmp_path / "out" / "report.md").read_text() == table
    assert "| real | 2 | 50.0 |" in table and "By popularity" in table
    # "batting hand" is the first query: it names question 1's subject, not question 2's
    assert "| real | well-known | 1 | 100.0 | 100.0 | 100.0 |" in table
    assert "| real | less-known | 1 | 0.0 | 100.0 | 0.0 |" in table
    assert (tmp_path / "out" / "report.png").read_bytes()[:4] == b"\x89PNG"
