"""CI smoke of ssrl-train: the whole pipeline on a handful of examples, a few steps (never the full run).

Uses the embedded corpus, the embedded base model (converted once into the cache, as the server
does) and the real trainer; it proves the pipeline runs, resumes and yields an adapter the service
can merge, not that the model learns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evals.datasets import load_jsonl
from service.engine.model_files import BASE_MODEL, prepare_adapter_model, prepare_embedded_model
from service.settings import Settings
from train.__main__ import main
from train.trainer import TrainConfig, Trainer, lr_at, tokenize
from train.trajectories import Segment, Trajectory

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)


def _args(out: Path, *extra: str) -> list[str]:
    """The command line of a tiny run (the cache is the server's default one)."""
    return [
        "--output",
        str(out),
        "--trajectories",
        "12",
        "--batch-size",
        "4",
        "--max-batch-tokens",
        "3072",
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(_args(out, "--steps", "2")) == 0
    return out


def test_the_pipeline_writes_splits_trajectories_an_adapter_and_its_card(trained: Path) -> None:
    data = trained / "data"
    test, bad = load_jsonl(data / "test.jsonl")  # in ssrl-eval's format
    assert not bad and len(test) >= 500
    train_questions = {q.question for q in load_jsonl(data / "train.jsonl")[0]}
    assert not train_questions & {q.question for q in test}
    rows = [json.loads(line) for line in (data / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in log)
    adapter = trained / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "loss.png"} <= {
        p.name for p in adapter.iterdir()
    }
    card = (adapter / "README.md").read_text()
    assert "ssrl-train --output" in card and "--trajectories 12" in card and "2 steps" in card
    assert (adapter / "adapter_model.safetensors").stat().st_size < 20_000_000  # bf16, about 10 MB
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # not a cache path
    assert "micro-batches of 1 sequence(s)" in card  # on CPU: one sequence per pass


def test_data_only_builds_the_data_and_trains_nothing(tmp_path: Path) -> None:
    assert main(_args(tmp_path, "--steps", "2", "--data-only")) == 0
    assert (tmp_path / "data" / "trajectories.jsonl").is_file()
    assert not (tmp_path / "train_log.jsonl").exists() and not (tmp_path / "adapter").exists()


def test_the_mix_flags_shape_the_data(tmp_path: Path) -> None:
    """No title answers, and no real search whose answer is in the first result: every answer is
    read from the second or third."""
    assert main(_args(tmp_path, "--trajectories", "40", "--data-only", *MIX)) == 0
    stats = json.loads((tmp_path / "data" / "stats.json").read_text())
    assert stats["description_share"] == 0.0
    assert stats["answer_rank"] and "1" not in stats["answer_rank"], stats["answer_rank"]
    assert stats["recipe"]["keep_first_rank"] == 0.0


MIX = ("--description-share", "0", "--keep-first-rank", "0")


def test_a_run_resumes_from_its_checkpoint_and_stops_where_asked(trained: Path) -> None:
    assert main(_args(trained, "--steps", "6", "--stop-at", "3")) == 0
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]  # steps 1-2 were not run again, 4-6 not at all
    assert log[2]["lr"] == pytest.approx(lr_at(2, TrainConfig(steps=6)))  # on the 6-step schedule


def test_the_adapter_merges_into_a_checkpoint_the_engine_can_load(trained: Path, tmp_path: Path) -> None:
    # A cache of its own (the merged model stays out of the user's), sharing the converted base.
    base = prepare_embedded_model(Settings().cache_dir, BASE_MODEL)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / BASE_MODEL).symlink_to(base)
    merged = prepare_adapter_model(trained / "adapter", tmp_path)
    assert merged.parent == tmp_path / "models"
    config = json.loads((merged / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()


def test_answer_weight_adds_to_the_loss_of_the_answer_tokens_only(tmp_path: Path) -> None:
    """The weighted loss is the plain loss plus (weight - 1) x the loss of the answer's tokens, and
    the plain loss (what the log reports) does not depend on the weight."""
    base = prepare_embedded_model(Settings().cache_dir, BASE_MODEL)
    trainer = Trainer(base, tmp_path, TrainConfig(steps=1))
    trajectory = Trajectory(
        "ghana-real",
        "real",
        [{"role": "user", "content": "What is the capital of Ghana?"}],
        [
            Segment("<think> I need the capital of Ghana. </think>\n<search> Ghana capital </search>", True),
            Segment("\n\n<information>Doc 1: Ghana. Its capital is Accra.</information>\n\n", False),
            Segment(
                '<think> Doc 1 is about Ghana: "Its capital is Accra." So the answer is Accra. </think>\n'
                "<answer> Accra </answer>",
                True,
            ),
        ],
        ("Accra",),
    )
    with trainer.torch.no_grad():
        losses = {w: trainer._loss([tokenize(trajectory, trainer.tokenizer, w)]) for w in (1.0, 5.0, 9.0)}
    plain = float(losses[1.0][1])
    assert float(losses[1.0][0]) == pytest.approx(plain)
    assert float(losses[5.0][1]) == pytest.approx(plain) and float(losses[9.0][1]) == pytest.approx(plain)
    extra = float(losses[5.0][0]) - plain
    assert extra > 0
    assert float(losses[9.0][0]) - plain == pytest.approx(2 * extra, rel=1e-4)
