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
import dataclasses
import json
import logging
import os
import random
import re
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

from evals.scoring import contains_answer, exact_match
from service.agent.prompts import PRESETS, SEARCH_R1_INSTRUCTION, ObservationFormat, agent_messages
from service.agent.steps import information_span
from train.qa import QA
from train.trajectories import OWN_KIND, Segment, Trajectory

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
    solved_at_most: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Keep nothing from a question answered exactly more often than this of --samples "
        "(the model already has it); unset = keep from every solved question.",
    )
    prefer_below_first: bool = Field(
        default=False,
        description="Of a question's exact trajectories, keep first those that read the answer from a "
        "result below the first (the reading the model gets wrong most).",
    )
    concurrency: int = Field(default=16, ge=1, le=1024, description="Requests in flight.")
    seed: int = Field(default=1, ge=0, description="Seed of the questions and of the sampling.")
    reuse_samples: bool = Field(
        default=True,
        description="Read the sampled trajectories back from <output>.samples.jsonl when it holds this "
        "adapter's samples with the same settings (cut them into training data again without sampling).",
    )
    cache_dir: Path = Field(
        default_factory=lambda: Path.home() / ".cache" / "ssrl", description="The server's cache_dir."
    )


@dataclass(frozen=True)
class Sampled:
    """One sampled trajectory: its text, its answer, how it ended, and where the observation of each
    real search lies in the text (the steps' ``information_span``, in order)."""

    text: str
    answer: str | None
    end_reason: str | None
    corrections: int
    spans: list[tuple[int, int]]


def segments_of(text: str, spans: Sequence[tuple[int, int]], observation: ObservationFormat) -> list[Segment]:
    """The trajectory cut into model-written text (trained) and the observations the loop appended
    after each real search (masked). Each observation is found by the ``information_span`` the
    service reported for its step (the ``<information>`` block), widened by the text the
    observation's wrapper puts around the block where that text is there. Raises ValueError when a
    span does not hold an ``<information>`` block of the text."""
    rendered = observation.render(None)
    block_start, block_end = information_span(rendered, 0)  # the loop's own rule for the block
    tagged = rendered.startswith("<information>", block_start)
    prefix, suffix = rendered[:block_start], rendered[block_end:]
    segments: list[Segment] = []
    at = 0
    for start, end in spans:
        block = text[start:end] if 0 <= start < end <= len(text) else ""
        if (
            start < at
            or not block
            or (tagged and not (block.startswith("<information>") and block.endswith("</information>")))
        ):
            raise ValueError(f"no <information> block of the trajectory at {start}:{end}")
        if prefix and start - len(prefix) >= at and text[start - len(prefix) : start] == prefix:
            start -= len(prefix)
        if suffix and text[end : end + len(suffix)] == suffix:
            end += len(suffix)
        if start > at:
            segments.append(Segment(text[at:start], True))
        segments.append(Segment(text[start:end], False))
        at = end
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


def read_rank(sample: Sampled, answers: Sequence[str]) -> int | None:
    """The rank (1-based) of the first result holding a gold answer in the last observation the
    trajectory read, or None when none does (or it read none)."""
    if not sample.spans:
        return None
    start, end = sample.spans[-1]
    docs = re.findall(r"^Doc (\d+): (.*)$", sample.text[start:end], flags=re.MULTILINE)
    return next((int(rank) for rank, text in docs if contains_answer(text, answers)), None)


def read_below_first(sample: Sampled, answers: Sequence[str]) -> bool:
    """Whether the trajectory's answer was in a result below the first (and in none above it)."""
    return (read_rank(sample, answers) or 1) > 1


def chosen(good: Sequence[Sampled], answers: Sequence[str], settings: SampleSettings) -> list[Sampled]:
    """The exact trajectories of one question that are kept: none from a question solved more often
    than ``solved_at_most``; those read below the first result first when asked; at most
    ``keep_per_question``."""
    if settings.solved_at_most is not None and len(good) > settings.solved_at_most:
        return []
    ordered = list(good)
    if settings.prefer_below_first:
        ordered.sort(key=lambda s: not read_below_first(s, answers))  # stable: sampling order within
    return ordered[: settings.keep_per_question]


def to_trajectory(qa: QA, number: int, sample: Sampled, observation: ObservationFormat) -> Trajectory:
    messages = [dict(m) for m in agent_messages(qa.question, SEARCH_R1_INSTRUCTION)]
    segments = segments_of(sample.text, sample.spans, observation)
    return Trajectory(f"{qa.id}-own{number}", OWN_KIND, messages, segments, qa.answers)


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
                    spans=[
                        (s.information_span.start, s.information_span.end)
                        for s in result.steps
                        if s.source == "real" and s.information_span is not None
                    ],
                )
            )
            bar.update(1)

        await asyncio.gather(*(one(qa, j) for qa in questions for j in range(settings.samples)))
    bar.close()
    return out


def _sampling_key(settings: SampleSettings) -> dict[str, object]:
    """What makes two sampling runs the same (their samples can stand in for each other)."""
    return settings.model_dump(
        mode="json", include={"adapter", "questions", "samples", "temperature", "top_p", "max_tokens", "seed"}
    )


def save_samples(path: Path, key: dict[str, object], sampled: dict[str, list[Sampled]]) -> None:
    """Every sampled trajectory, kept or not, one JSON line each (the first line: the settings)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"key": key}) + "\n")
        for qid, samples in sampled.items():
            for sample in samples:
                handle.write(json.dumps({"id": qid, **dataclasses.asdict(sample)}, ensure_ascii=False) + "\n")


def load_samples(path: Path, key: dict[str, object]) -> dict[str, list[Sampled]] | None:
    """The samples saved by :func:`save_samples` under the same settings, or None."""
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or json.loads(lines[0]).get("key") != key:
        return None
    out: dict[str, list[Sampled]] = {}
    for line in lines[1:]:
        row = json.loads(line)
        qid = row.pop("id")
        row["spans"] = [tuple(span) for span in row["spans"]]
        out.setdefault(qid, []).append(Sampled(**row))
    return out


def run(settings: SampleSettings) -> dict[str, object]:
    from service.search.local import LocalIndex
    from train.data import sample_questions

    index = LocalIndex.load(None, settings.cache_dir / "indexes")
    questions = sample_questions(index, settings.questions, random.Random(settings.seed))
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    samples_file = settings.output.with_suffix(".samples.jsonl")
    key = _sampling_key(settings)
    sampled = load_samples(samples_file, key) if settings.reuse_samples else None
    if sampled is None:
        sampled = asyncio.run(_sample_all(settings, questions))
        save_samples(samples_file, key, sampled)
    else:
        logger.info("reusing the samples in %s", samples_file)
    observation = PRESETS["ssrl-smollm2"]
    kept: list[Trajectory] = []
    solved = Counter[int]()
    below_first = 0
    for qa in questions:
        good = [s for s in sampled.get(qa.id, []) if keep(s, qa.answers)]
        solved[len(good)] += 1
        picked = chosen(good, qa.answers, settings)
        below_first += sum(read_below_first(s, qa.answers) for s in picked)
        for number, sample in enumerate(picked):
            try:
                kept.append(to_trajectory(qa, number, sample, observation))
            except ValueError:
                logger.warning("%s: an observation could not be found in the trajectory; skipped", qa.id)
    with settings.output.open("w", encoding="utf-8") as handle:
        for trajectory in kept:
            handle.write(json.dumps(trajectory.to_json(), ensure_ascii=False) + "\n")
    stats: dict[str, object] = {
        "questions": len(questions),
        "samples_per_question": settings.samples,
        "questions_with_k_exact": {str(k): v for k, v in sorted(solved.items())},
        "questions_solved": sum(v for k, v in solved.items() if k > 0),
        "kept": len(kept),
        "kept_read_below_first": below_first,
        "solved_at_most": settings.solved_at_most,
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
