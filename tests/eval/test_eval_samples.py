"""ssrl-eval --samples K and sample_trajectories, against the in-process app on the scripted engine:
n = K requests, resumable results, pass@k / maj@k figures that match hand-computed values, the report
and its plot, and trajectories with the spans of the text the service injected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.__main__ import EvalSettings
from evals.datasets import QAItem
from evals.report import markdown_samples, plot_samples, summarise_samples
from evals.sampling import (
    Sampling,
    SamplingRefusedError,
    read_samples,
    run_samples,
    sample_trajectories,
)
from service.agent.runtime import choice_seed
from service.agent.tags import CORRECTION
from service.engine.base import SamplingOptions
from service.engine.scripted import ScriptedEngine
from service.settings import Settings
from ssrl_client import AsyncClient
from tests.conftest import build_app, running
from tests.fakes import FakeBackend

ITEMS = [QAItem("1", "Which hand?", ("Right",)), QAItem("2", "Which way?", ("Left",))]
#: What choice i of each question answers (None: it ends without an answer).
ANSWERS: dict[str, list[str | None]] = {
    "1": ["Right", "Right", "Left", None],
    "2": ["Up", "Up", "Left", "Up"],
}
SAMPLING = Sampling(k=4, temperature=0.8, seed=11)


def _who(options: SamplingOptions) -> tuple[str, int]:
    """The question and choice of an engine call, read back from its seed (choice seed + turn)."""
    for qid in ANSWERS:
        for i in range(4):
            base = choice_seed(SAMPLING.request_seed(qid), i)
            assert base is not None and options.seed is not None
            if 0 <= options.seed - base < 4:
                return qid, i
    raise AssertionError(f"unknown seed {options.seed}")


def script(prompt: str, options: SamplingOptions) -> str:
    qid, i = _who(options)
    answer = ANSWERS[qid][i]
    tail = f"<think> so </think>\n<answer> {answer} </answer>" if answer else "I am not sure."
    if "</search>" not in options.stop:  # self mode: one generation writes it all
        return f"<search> q{qid} </search>\n<information> what I know </information>\n{tail}"
    trajectory = prompt.rsplit("<|assistant|>\n", 1)[-1]
    return tail if "</search>" in trajectory else f"<think> look </think>\n<search> q{qid} </search>"


def app_of(tmp_path: Path, **settings: object):
    return build_app(Settings(cache_dir=tmp_path, **settings), engine=ScriptedEngine(script))


async def test_samples_are_scored_resumable_and_reported(tmp_path: Path) -> None:
    results = tmp_path / "out" / "samples.jsonl"
    engine = ScriptedEngine(script)
    app = build_app(Settings(cache_dir=tmp_path), engine=engine)
    async with running(app) as http:
        client = AsyncClient(base_url="http://t", http_client=http)
        kwargs = {"sampling": SAMPLING, "concurrency": 2, "options": {"max_tokens": 400}, "progress": False}
        asked = await run_samples(client, ITEMS, ["self", "real"], results, **kwargs)  # type: ignore[arg-type]
        again = await run_samples(client, ITEMS, ["self", "real"], results, **kwargs)  # type: ignore[arg-type]
    assert (asked, again) == (4, 0)  # one request per question and mode; nothing asked twice
    assert len({c.request_id.rsplit("-", 2)[0] for c in engine.calls}) == 4  # chatcmpl-…-{i}-t{turn}
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(lines) == 4 and all(r["error"] is None and len(r["samples"]) == 4 for r in lines)
    by = {(r["id"], r["mode"]): r for r in read_samples(results, SAMPLING)}
    for mode in ("self", "real"):
        assert [s["answer"] for s in by[("1", mode)]["samples"]] == ANSWERS["1"]
        assert [s["em"] for s in by[("2", mode)]["samples"]] == [0.0, 0.0, 1.0, 0.0]
    assert [s["real_calls"] for s in by[("1", "real")]["samples"]] == [1, 1, 1, 1]
    assert by[("1", "real")]["samples"][3]["end_reason"] == "malformed_action"
    assert read_samples(results, Sampling(k=4, temperature=0.5, seed=11)) == []  # another run's lines

    [self_mode, real] = summarise_samples(read_samples(results, SAMPLING), ["self", "real"], 4)
    for summary in (self_mode, real):
        curve = summary.curve
        assert curve is not None and curve.ks == (1, 2, 4) and summary.questions == 2
        # question 1: 2 of 4 right, votes Right Right Left -; question 2: 1 of 4, votes Up Up Left Up
        assert curve.pass_at == pytest.approx(((0.5 + 0.25) / 2, (5 / 6 + 0.5) / 2, 1.0))
        assert curve.maj_at == pytest.approx(((0.5 + 0.25) / 2, (4 / 6 + 0.25) / 2, (1.0 + 0.0) / 2))
        assert curve.answered_at == pytest.approx(((0.75 + 1) / 2, 1.0, 1.0))
        assert summary.answered == pytest.approx(87.5) and summary.errors == 0
    assert real.real_calls == 1.0 and self_mode.real_calls == 0.0 and self_mode.searches == 1.0
    table = markdown_samples([self_mode, real], "t")
    assert "| self | 2 | pass@k % | 37.5 | 66.7 | 100.0 |" in table
    assert "| real | 2 | maj@k % | 37.5 | 45.8 | 50.0 |" in table
    plot_samples([self_mode, real], tmp_path / "p.png", "t")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


async def test_sample_trajectories_mark_what_the_service_injected(tmp_path: Path) -> None:
    backend = FakeBackend(name="local")
    app = build_app(Settings(cache_dir=tmp_path), engine=ScriptedEngine(script), backend=backend)
    # an app is run in-process (its lifespan and engine); seeds as the eval's
    [first, second] = await sample_trajectories(app, ITEMS, 4, mode="real", temperature=0.8, seed=11)
    assert [t.index for t in first] == [0, 1, 2, 3] and all(t.question_id == "1" for t in first)
    assert [t.answer for t in first] == ANSWERS["1"]
    assert [t.correct for t in first] == [True, True, False, False]
    assert [t.correct for t in second] == [False, False, True, False]
    for trajectory in first:
        [step] = trajectory.steps
        assert step.source == "real" and step.information_span is not None
        info = (step.information_span.start, step.information_span.end)
        assert info in trajectory.injected
        block = trajectory.text[info[0] : info[1]]
        assert block.startswith("<information>") and "Paris is the capital" in block
        written = "".join(trajectory.text[a:b] for a, b in trajectory.model_written())
        assert "<search> q1 </search>" in written and "Paris is the capital" not in written
        assert len(written) + sum(b - a for a, b in trajectory.injected) == len(trajectory.text)
    corrected = first[3]  # no answer: the loop appended its correction, which is injected text too
    assert corrected.end_reason == "malformed_action"
    assert (at := corrected.text.find(CORRECTION)) >= 0 and (at, at + len(CORRECTION)) in corrected.injected
    assert CORRECTION not in "".join(corrected.text[a:b] for a, b in corrected.model_written())


async def test_plain_questions_and_a_client_target(tmp_path: Path) -> None:
    engine = ScriptedEngine("<search> x </search><information> y </information><answer> z </answer>")
    app = build_app(Settings(cache_dir=tmp_path), engine=engine)
    async with running(app) as http:
        client = AsyncClient(base_url="http://t", http_client=http)
        [only] = await sample_trajectories(client, ["Any question?"], 3, temperature=0.8, seed=1)
    assert [t.answer for t in only] == ["z", "z", "z"] and all(t.correct is None for t in only)
    assert all(t.injected == () and t.model_written() == [(0, len(t.text))] for t in only)
    assert len({c.options.seed for c in engine.calls}) == 3 and all(
        c.options.top_p == 1.0 for c in engine.calls
    )


async def test_a_k_over_the_servers_max_n_is_refused_once_and_clearly(tmp_path: Path) -> None:
    app = app_of(tmp_path, max_n=2)
    async with running(app) as http:
        client = AsyncClient(base_url="http://t", http_client=http)
        with pytest.raises(SamplingRefusedError, match="--max-n 4"):
            await run_samples(
                client,
                ITEMS,
                ["self"],
                tmp_path / "s.jsonl",
                sampling=SAMPLING,
                concurrency=1,
                options={},
                progress=False,
            )


def test_the_command_line_takes_the_sampling_options() -> None:
    from pydantic import ValidationError
    from pydantic_settings import CliApp

    settings = CliApp.run(
        EvalSettings,
        cli_args=[
            "--samples",
            "16",
            "--temperature",
            "0.8",
            "--top-p",
            "0.95",
            "--seed",
            "3",
            "--modes",
            "self,real",
        ],
    )
    assert (settings.samples, settings.temperature, settings.top_p, settings.seed) == (16, 0.8, 0.95, 3)
    assert settings.modes == ["self", "real"]
    with pytest.raises(ValidationError):
        CliApp.run(EvalSettings, cli_args=["--samples", "0"])
