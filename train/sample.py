"""A later round of training on the model's own trajectories (rejection sampling, as STaR and SSRL's
warm-up do before or instead of RL).

For training questions (fresh phrasings of training facts; never an article of a held-out set), the
service itself, in-process with the adapter to improve, samples ``k`` real-mode trajectories each at
a temperature; those that end in a well-formed, exact answer within the token budget are kept, cut
into what the model wrote (trained on) and what the loop injected (the search results, masked), and
written as ssrl-train trajectories for ``ssrl-train --own``.

    python -m train.sample --adapter runs/ssrl-r1/adapter --output runs/ssrl-r2/own.jsonl
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pydantic import Field
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict
from tqdm import tqdm

from evals.scoring import exact_match
from service.agent.prompts import PRESETS, SEARCH_R1_INSTRUCTION, ObservationFormat, agent_messages
from service.search.base import Doc
from train.qa import QA
from train.trajectories import Segment, Trajectory

logger = logging.getLogger("train.sample")


class SampleSettings(BaseSettings):
    """Settings of ``python -m train.sample``."""

    model_config = SettingsConfigDict(
        env_prefix="SSRL_SAMPLE_", cli_kebab_case=True, cli_prog_name="train.sample", cli_implicit_flags=True
    )

    adapter: Path = Field(description="The adapter to sample from (a run's adapter/ folder).")
    output: Path = Field(description="JSONL of the kept trajectories (ssrl-train --own reads it).")
    questions: int = Field(default=1000, ge=1, le=1_000_000, description="Training questions to ask.")
    samples: int = Field(default=4, ge=1, le=64, description="Trajectories per question.")
    temperature: float = Field(default=0.8, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Nucleus sampling.")
    max_tokens: int = Field(default=480, ge=64, le=4096, description="Trajectory budget (results included).")
    keep_per_question: int = Field(default=2, ge=1, le=64, description="Most kept trajectories per question.")
    concurrency: int = Field(default=16, ge=1, le=1024, description="Requests in flight.")
    seed: int = Field(default=1, ge=0, description="Seed of the questions and of the sampling.")
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "ssrl", description="The server's cache_dir."
    )


@dataclass(frozen=True)
class Sampled:
    """One sampled trajectory: its text, its answer, how it ended, and the results each real search
    injected (in order)."""

    text: str
    answer: str | None
    end_reason: str | None
    corrections: int
    injected: list[list[Doc]]


def segments_of(
    text: str, injected: Sequence[Sequence[Doc]], observation: ObservationFormat
) -> list[Segment]:
    """The trajectory cut into model-written text (trained) and the observations the loop appended
    after each real search (masked), found where the loop put them. Raises ValueError when an
    observation is not in the text as the loop renders it."""
    segments: list[Segment] = []
    at = 0
    for docs in injected:
        block = observation.render(list(docs))
        where = text.find(block, at)
        if where < 0:
            raise ValueError("an injected observation is not in the trajectory")
        if where > at:
            segments.append(Segment(text[at:where], True))
        segments.append(Segment(block, False))
        at = where + len(block)
    if at < len(text):
        segments.append(Segment(text[at:], True))
    return segments


def keep(sample: Sampled, answers: Sequence[str]) -> bool:
    """A trajectory worth learning from: it ended in its own <answer>, without the correction, and
    the answer is exact."""
    return (
        sample.end_reason == "answer"
        and sample.corrections == 0
        and sample.answer is not None
        and bool(exact_match(sample.answer, list(answers)))
    )


def to_trajectory(qa: QA, number: int, sample: Sampled, observation: ObservationFormat) -> Trajectory:
    messages = [dict(m) for m in agent_messages(qa.question, SEARCH_R1_INSTRUCTION)]
    segments = segments_of(sample.text, sample.injected, observation)
    return Trajectory(f"{qa.id}-own{number}", "own", messages, segments, qa.answers)


async def _sample_all(settings: SampleSettings, questions: list[QA]) -> dict[str, list[Sampled]]:
    from service.app import create_app, in_process
    from service.settings import Settings
    from ssrl_client import AsyncClient

    served = Settings(
        model=str(settings.adapter),
        served_model_name="ssrl-smollm2-round",
        cache_dir=settings.cache_dir,
        search_mode="real",
        max_concurrency=max(64, settings.concurrency),
    )
    app = create_app(served)
    out: dict[str, list[Sampled]] = {q.id: [] for q in questions}
    limit = asyncio.Semaphore(settings.concurrency)
    bar = tqdm(total=len(questions) * settings.samples, desc="sampling", unit="traj")
    async with in_process(app, timeout=600, wait_for_engine=True) as http:
        client = AsyncClient(base_url=str(http.base_url), http_client=http, max_retries=3)

        async def one(qa: QA, j: int) -> None:
            async with limit:
                result = await client.ask(
                    qa.question,
                    search_mode="real",
                    temperature=settings.temperature,
                    top_p=settings.top_p,
                    max_tokens=settings.max_tokens,
                    seed=(settings.seed * 1_000_003 + zlib.crc32(qa.id.encode()) * 64 + j) % 2**31,
                )
            trace = result.trace
            out[qa.id].append(
                Sampled(
                    text=result.trajectory or "",
                    answer=result.answer,
                    end_reason=trace.end_reason if trace else None,
                    corrections=trace.corrections if trace else 0,
                    injected=[
                        [Doc(d.title, d.text, d.url) for d in s.results]
                        for s in result.steps
                        if s.source == "real"
                    ],
                )
            )
            bar.update(1)

        await asyncio.gather(*(one(qa, j) for qa in questions for j in range(settings.samples)))
    bar.close()
    return out


def run(settings: SampleSettings) -> dict[str, object]:
    from service.search.local import LocalIndex
    from train.data import sample_questions

    index = LocalIndex.load(None, settings.cache_dir / "indexes")
    questions = sample_questions(index, settings.questions, random.Random(settings.seed))
    sampled = asyncio.run(_sample_all(settings, questions))
    observation = PRESETS["ssrl-smollm2"]
    kept: list[Trajectory] = []
    solved = Counter[int]()
    for qa in questions:
        good = [s for s in sampled[qa.id] if keep(s, qa.answers)]
        solved[len(good)] += 1
        for number, sample in enumerate(good[: settings.keep_per_question]):
            try:
                kept.append(to_trajectory(qa, number, sample, observation))
            except ValueError:
                logger.warning("%s: an observation could not be found in the trajectory; skipped", qa.id)
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    with settings.output.open("w", encoding="utf-8") as handle:
        for trajectory in kept:
            handle.write(json.dumps(trajectory.to_json(), ensure_ascii=False) + "\n")
    stats: dict[str, object] = {
        "questions": len(questions),
        "samples_per_question": settings.samples,
        "questions_with_k_exact": {str(k): v for k, v in sorted(solved.items())},
        "questions_solved": sum(v for k, v in solved.items() if k > 0),
        "kept": len(kept),
        "temperature": settings.temperature,
        "adapter": str(settings.adapter),
    }
    settings.output.with_suffix(".stats.json").write_text(json.dumps(stats, indent=2))
    logger.info("sampled: %s", stats)
    return stats


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(CliApp.run(SampleSettings, cli_args=sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
