"""Loop cost: per turn of real-mode runs on the real engine, prompt tokens served from vLLM's prefix
cache against those recomputed.

    .venv/bin/python -m bench.loop_cost [--questions 24] [--max-tokens 400]

Each run starts from a prefilled search (the embedded SmolLM2 does not write the tags itself), so
turn 1 re-submits prompt + search + results; later turns (after a correction or another search)
re-submit the whole trajectory so far. Baseline in the same run: the same questions asked a
second time, when everything up to the results is already cached.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

from bench._util import ssrl_server, table, write_json
from evals.datasets import load_fanoutqa_dev
from service.settings import EMBEDDED_MODEL_NAME

MODEL = EMBEDDED_MODEL_NAME


def ask(url: str, question: str, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": MODEL,
        "search_mode": "real",
        "max_tokens": max_tokens,
        "search": {"top_k": 2},
        "messages": [
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "content": f"<think> I need to look this up. </think>\n<search> {question} </search>",
            },
        ],
    }
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    response.raise_for_status()
    return response.json()["search_trace"]


def per_turn(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    totals: dict[int, dict[str, int]] = defaultdict(lambda: {"turns": 0, "prompt": 0, "cached": 0})
    for trace in traces:
        for i, turn in enumerate(trace["turns"]):
            t = totals[i + 1]
            t["turns"] += 1
            t["prompt"] += turn["prompt_tokens"]
            t["cached"] += turn["cached_tokens"]
    return [
        {
            "turn": k,
            "runs": v["turns"],
            "prompt_tokens": v["prompt"],
            "cached_tokens": v["cached"],
            "recomputed_tokens": v["prompt"] - v["cached"],
            "cached_share": v["cached"] / v["prompt"] if v["prompt"] else 0.0,
        }
        for k, v in sorted(totals.items())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("bench/results/loop_cost.json"))
    args = parser.parse_args()
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    questions = [item.question for item in load_fanoutqa_dev()[: args.questions]]
    with ssrl_server(
        log_dir, "--engine.max-model-len", "2048", "--engine.block-size", str(args.block_size)
    ) as server:
        first = [ask(server.url, q, args.max_tokens) for q in questions]
        second = [ask(server.url, q, args.max_tokens) for q in questions]
    results = {"first pass": per_turn(first), "same questions again": per_turn(second)}
    for label, rows in results.items():
        print(f"\n{label}: {len(questions)} questions, block size {args.block_size}")
        print(
            table(
                ["turn", "runs", "prompt tokens", "cached", "recomputed", "cached share"],
                [
                    [
                        r["turn"],
                        r["runs"],
                        r["prompt_tokens"],
                        r["cached_tokens"],
                        r["recomputed_tokens"],
                        r["cached_share"],
                    ]
                    for r in rows
                ],
            )
        )
    write_json(
        args.out,
        {
            "benchmark": "loop_cost",
            "args": vars(args) | {"out": str(args.out)},
            "results": results,
            "end_reasons": [t["end_reason"] for t in first],
        },
    )


if __name__ == "__main__":
    main()
