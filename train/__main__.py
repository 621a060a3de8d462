"""``ssrl-train``: from the embedded corpus to an SSRL adapter for the embedded SmolLM2-135M-Instruct.

ssrl-train --output runs/ssrl                # data, training, adapter, loss curve, model card
ssrl-train --output runs/ssrl --install      # ... and make it the embedded default model
ssrl-train --output runs/self --self-only    # SSRL's own setting: every result written by the model
"""

from __future__ import annotations

import os

# OpenMP threads that spin while they wait collapse when the cores are shared with other work: an
# elementwise product of 330x576 floats took 31.7 ms on 2 spinning threads beside other jobs, 1.5 ms
# with passive waiting (1.2 ms on one thread). Set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dataclasses
import json
import logging
import shlex
import shutil
import sys
import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict

from service.agent.prompts import PRESETS
from service.engine.model_files import BASE_MODEL, SSRL_ADAPTER_DIR, prepare_embedded_model
from service.search.local import LocalIndex
from train.card import write_card
from train.data import Mix, added_trajectories, build_dataset, read_trajectories
from train.trainer import TrainConfig, Trainer, plot_loss, read_log, tokenize
from train.trajectories import Builder

logger = logging.getLogger("train")


class TrainSettings(BaseSettings):
    """Settings of ssrl-train."""

    model_config = SettingsConfigDict(
        env_prefix="SSRL_TRAIN_",
        cli_kebab_case=True,
        cli_prog_name="ssrl-train",
        cli_implicit_flags=True,
        cli_hide_none_type=True,
    )

    output: Path = Field(
        default=Path("runs/ssrl"), description="Run folder: data/, checkpoint/, adapter/, card."
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "ssrl",
        description="Where the base model is converted and the index cached (the server's cache_dir).",
    )
    trajectories: int = Field(default=2600, ge=1, le=1_000_000, description="Training trajectories to make.")
    steps: int = Field(default=300, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(default=8, ge=1, le=1024, description="Sequences per step (at most).")
    max_batch_tokens: int = Field(
        default=6144, ge=256, description="Tokens per step (at most; longest sequence x sequences)."
    )
    lr: float = Field(default=4e-4, gt=0, le=1.0, description="Peak learning rate (cosine to 10 %).")
    rank: int = Field(default=16, ge=1, le=512, description="LoRA rank (all attention and MLP projections).")
    seed: int = Field(default=0, ge=0, description="Seed of data, sampling and initialisation.")
    max_minutes: float | None = Field(default=75, gt=0, description="Stop (and save) after this long.")
    stop_at: int | None = Field(
        default=None,
        ge=1,
        description="Stop at this step with the learning-rate schedule of --steps (a snapshot of a run, "
        "for comparisons at equal budget).",
    )
    threads: int | None = Field(default=None, ge=1, le=512, description="Torch CPU threads; unset = torch's.")
    micro_batch: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Sequences per forward pass (gradients accumulated over a step); unset = 1 on CPU, "
        "the whole step on a GPU.",
    )
    top_k: int = Field(default=3, ge=1, le=20, description="Results per real search (the server's default).")
    result_words: int = Field(default=100, ge=0, description="Words per result (the server's default).")
    snippet_words: int = Field(
        default=40, ge=0, description="Words of each result's query-biased snippet (the server's default)."
    )
    max_trajectory_tokens: int = Field(
        default=480,
        ge=64,
        description="Longest trajectory kept (tokens after the prompt, results included), so that "
        "trajectories fit a max_tokens of 512.",
    )
    description_share: float = Field(
        default=Mix.description,
        ge=0.0,
        le=1.0,
        description="Share of questions whose answer is the article's own title ('which city is known "
        "as ...'); the rest ask for a fact inside an article.",
    )
    keep_first_rank: float = Field(
        default=Mix.keep_first_rank,
        ge=0.0,
        le=1.0,
        description="Share of real-search trajectories kept when the answer is in the first result; "
        "lower = more answers read from the second or third result.",
    )
    keep_first_sentence: float = Field(
        default=Mix.keep_first_sentence,
        ge=0.0,
        le=1.0,
        description="Share of trajectories kept when the sentence quoted for the answer is its result's "
        "first; lower = more answers read further into a result.",
    )
    quote_to_answer: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of answers whose reasoning quotes the sentence only up to and with the "
        "answer, so that the answer is the last thing quoted (not the subject the sentence opens with).",
    )
    gap_share: float = Field(
        default=Mix.gap,
        ge=0.0,
        le=1.0,
        description="Share of questions asking for the name or year that completes a sentence about the "
        "subject ('the salween river flows into which sea'; train.gaps): relations beyond the table of "
        "rules.",
    )
    answer_weight: float = Field(
        default=1.0,
        ge=1.0,
        le=100.0,
        description="Loss weight of the tokens that state the answer (the reasoning's last naming of it and "
        "the <answer> text) against the rest of what the model writes: the choice of the span, a few "
        "tokens of each trajectory.",
    )
    self_only: bool = Field(
        default=False,
        description="Every <information> written by the model (SSRL's simulated search), none from the "
        "index.",
    )
    data_only: bool = Field(
        default=False,
        description="Build data/ and stop (inspect it, or build here and train where a GPU is).",
    )
    reuse_data: bool = Field(default=True, description="Keep data/ of an earlier run with the same settings.")
    install: bool = Field(default=False, description=f"Copy the adapter and card into {SSRL_ADAPTER_DIR}.")
    init_adapter: Path | None = Field(
        default=None, description="Start from this adapter's weights (a later round of training)."
    )
    own: list[Path] = Field(
        default_factory=list,
        description="More trajectories to train on (JSONL, as ssrl-train writes them), such as the model's "
        "own exact trajectories sampled by train.sample, or an earlier run's data/trajectories.jsonl; "
        "added to the built ones (the card says which).",
    )


def run(settings: TrainSettings, argv: list[str]) -> Path:
    out = settings.output
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    base = prepare_embedded_model(settings.cache_dir, BASE_MODEL)
    index = LocalIndex.load(None, settings.cache_dir / "indexes")
    data_dir = out / "data"
    recipe = settings.model_dump(
        mode="json", include={"trajectories", "seed", "top_k", "result_words", "snippet_words", "self_only"}
    )
    mix = Mix(
        description=settings.description_share,
        keep_first_rank=settings.keep_first_rank,
        gap=settings.gap_share,
        keep_first_sentence=settings.keep_first_sentence,
    )
    if mix != Mix():  # a recipe of the default mix stays as earlier runs wrote it (their data is reused)
        recipe |= {"description_share": mix.description, "keep_first_rank": mix.keep_first_rank}
    if mix.gap:
        recipe |= {"gap_share": mix.gap}
    if mix.keep_first_sentence < 1:
        recipe |= {"keep_first_sentence": mix.keep_first_sentence}
    if settings.quote_to_answer:
        recipe |= {"quote_to_answer": settings.quote_to_answer}
    stats_file = data_dir / "stats.json"
    earlier = json.loads(stats_file.read_text()) if settings.reuse_data and stats_file.is_file() else {}
    if earlier.get("recipe") == recipe:
        stats = earlier
        logger.info("reusing the data in %s", data_dir)
    else:
        builder = Builder(
            index,
            PRESETS["ssrl-smollm2"],
            top_k=settings.top_k,
            result_words=settings.result_words,
            snippet_words=settings.snippet_words,
            self_only=settings.self_only,
            quote_to_answer=settings.quote_to_answer,
        )
        stats = build_dataset(
            index,
            builder,
            data_dir,
            trajectories=settings.trajectories,
            seed=settings.seed,
            mix=mix,
            result_words=settings.result_words,
        )
        stats["recipe"] = recipe
        stats["max_trajectory_tokens"] = settings.max_trajectory_tokens
        stats_file.write_text(json.dumps(stats, indent=2))
    if settings.data_only:
        print(f"data: {data_dir} ({stats['trajectories']} trajectories)")
        return data_dir

    config = TrainConfig(
        steps=settings.steps,
        batch_size=settings.batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        lr=settings.lr,
        rank=settings.rank,
        alpha=2 * settings.rank,
        seed=settings.seed,
        max_minutes=settings.max_minutes,
        stop_at=settings.stop_at,
        threads=settings.threads,
        micro_batch=settings.micro_batch,
        init_adapter=settings.init_adapter,
        answer_weight=settings.answer_weight,
    )
    trainer = Trainer(base, out, config)
    trajectories = read_trajectories(data_dir / "trajectories.jsonl")
    own = [t for path in settings.own for t in read_trajectories(path)]
    if own:
        stats.update(added_trajectories(own))
        stats["own_from"] = [str(p) for p in settings.own]
    examples = [tokenize(t, trainer.tokenizer, config.answer_weight) for t in [*trajectories, *own]]
    kept = [
        e
        for e in examples
        if len(e.ids) <= config.max_length and len(e.ids) - e.prompt_length <= settings.max_trajectory_tokens
    ]
    logger.info(
        "%d trajectories, %d within %d tokens after the prompt",
        len(examples),
        len(kept),
        settings.max_trajectory_tokens,
    )
    trainer.resume()
    result = trainer.train(kept)
    adapter = out / "adapter"
    trainer.save_adapter(adapter)
    log = read_log(out / "train_log.jsonl")
    plot_loss(log, out / "loss.png")
    command = "ssrl-train " + shlex.join(argv)
    write_card(
        adapter / "README.md",
        command=command,
        stats=stats,
        config=dataclasses.replace(config, micro_batch=trainer.micro_batch),
        result=result,
        log=log,
        minutes=(time.monotonic() - started) / 60,
        self_only=settings.self_only,
    )
    shutil.copy(out / "loss.png", adapter / "loss.png")
    if settings.install:
        SSRL_ADAPTER_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("adapter_config.json", "adapter_model.safetensors", "README.md", "loss.png"):
            shutil.copy(adapter / name, SSRL_ADAPTER_DIR / name)
        logger.info("installed the adapter into %s", SSRL_ADAPTER_DIR)
    print(f"adapter: {adapter} ({result['steps']} steps)")
    return adapter


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    args = sys.argv[1:] if argv is None else argv
    settings = CliApp.run(TrainSettings, cli_args=args)
    run(settings, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
