"""Greedy answers with and without speculative decoding: the same questions through two servers of
this service (``--engine.speculation off`` and ``ngram``, or ``--speculation`` to compare another),
real mode, greedy, the same concurrency; counts identical answers and trajectories, EM of each, and
lists every difference with where the two trajectories part.

    .venv/bin/python -m bench.speculation [--questions 200] [--concurrency 16] [--control]
        [--dataset bench/data/ssrl-test.jsonl] [--max-tokens 1024] [--out bench/results/speculation.json]

The target model checks every drafted token, so greedy speculation should give the model's own
answers; what can still differ is float rounding: a step that verifies k+1 tokens at once computes
them in a batch of another shape than k+1 single steps, and a near-tie between two tokens can flip.
Batching does the same without speculation (concurrent requests share steps of changing sizes):
``--control`` runs the speculation-off server twice, so the differences that batching alone makes
are counted beside those of speculation. Search is the local index behind ``ssrl-retriever`` on
loopback, the service's search cache off; the servers run one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench._util import Server, retriever_server, table, write_json, write_results
from bench.client_mode import (
    MODEL,
    SPEC_COUNTERS,
    Outcome,
    System,
    engine_counters,
    load_questions,
    serve,
    service_asker,
)
from evals.scoring import exact_match
from service.engine.model_files import prepare_embedded_model
from service.settings import Settings
from ssrl_client import AsyncClient


def parted_at(a: str | None, b: str | None) -> int | None:
    """The first character at which two trajectories differ; None when they are equal."""
    a, b = a or "", b or ""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def ask_all(
    server: Server, retriever: str, questions: list[tuple[str, list[str]]], concurrency: int, max_tokens: int
) -> tuple[list[Outcome], dict[str, float], float]:
    async def go() -> tuple[list[Outcome], dict[str, float], float]:
        async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=128)) as http:
            client = AsyncClient(
                base_url=server.url, model=MODEL, max_retries=0, timeout=900, http_client=http
            )
            ask = service_asker(client, "real", retriever, http, max_tokens)
            limit = asyncio.Semaphore(concurrency)

            async def one(question: str) -> Outcome:
                async with limit:
                    return await ask(question)

            started = time.perf_counter()
            outcomes = await asyncio.gather(*(one(q) for q, _ in questions))
            elapsed = time.perf_counter() - started
            return outcomes, await engine_counters(http, server.url), elapsed

    return asyncio.run(go())


def compare(
    questions: list[tuple[str, list[str]]], base: list[Outcome], other: list[Outcome]
) -> dict[str, Any]:
    differences: list[dict[str, Any]] = []
    for i, ((question, golds), a, b) in enumerate(zip(questions, base, other, strict=True)):
        at = parted_at(a.trajectory, b.trajectory)
        if at is None and a.answer == b.answer:
            continue
        text_a, text_b = a.trajectory or "", b.trajectory or ""
        differences.append(
            {
                "index": i,
                "question": question,
                "golden_answers": golds,
                "answers": [a.answer, b.answer],
                "em": [exact_match(a.answer or "", golds), exact_match(b.answer or "", golds)],
                "same_answer": a.answer == b.answer,
                "parted_at_char": at,
                "context": text_a[max(0, (at or 0) - 80) : at],
                "then": [text_a[at : (at or 0) + 80], text_b[at : (at or 0) + 80]],
            }
        )
    return {
        "same_answer": sum(a.answer == b.answer for a, b in zip(base, other, strict=True)),
        "same_trajectory": sum(a.trajectory == b.trajectory for a, b in zip(base, other, strict=True)),
        "em_changed": sum(d["em"][0] != d["em"][1] for d in differences),
        "differences": differences,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--speculation", default="ngram", help="the engine.speculation to compare with off")
    parser.add_argument("--control", action="store_true", help="run the off server twice (batching alone)")
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--dataset", type=Path, default=Path("bench/data/ssrl-test.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/speculation.json"))
    args = parser.parse_args()
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    questions = load_questions(args.dataset, args.questions)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model_dir = Path(prepare_embedded_model(Settings().cache_dir))
    runs = {"off": "off", args.speculation: args.speculation} | ({"off again": "off"} if args.control else {})
    outcomes: dict[str, list[Outcome]] = {}
    stats: dict[str, dict[str, Any]] = {}
    with retriever_server(log_dir) as retriever:
        for name, speculation in runs.items():
            system = System(name, "service", args=("--engine.speculation", speculation))
            load_start = os.getloadavg()
            with serve(system, log_dir, retriever.url, model_dir) as server:
                outcomes[name], counters, elapsed = ask_all(
                    server, retriever.url, questions, args.concurrency, args.max_tokens
                )
            got = outcomes[name]
            stats[name] = {
                "speculation": speculation,
                "em": int(
                    sum(exact_match(o.answer or "", g) for o, (_, g) in zip(got, questions, strict=True))
                ),
                "answered": sum(o.answer is not None for o in got),
                "elapsed_s": elapsed,
                "loadavg_start": load_start,
                "loadavg_end": os.getloadavg(),
                **counters,
            }
            print(f"{name}: EM {stats[name]['em']} / {len(questions)}, {elapsed:.0f} s", flush=True)
            partial = {name: [dataclasses.asdict(o) for o in got] for name, got in outcomes.items()}
            write_json(args.out.with_suffix(".partial.json"), {"servers": stats, "outcomes": partial})
    comparisons = {
        f"{args.speculation} vs off": compare(questions, outcomes["off"], outcomes[args.speculation])
    }
    if args.control:
        comparisons["off again vs off (control)"] = compare(questions, outcomes["off"], outcomes["off again"])
    n = len(questions)
    lines = [
        f"{n} questions of {args.dataset}, real mode, greedy, concurrency {args.concurrency}, "
        f"max_tokens {args.max_tokens}",
        "",
        table(
            ["server", "EM", "answered", "accepted / draft tokens", "s", "load avg start -> end"],
            [
                [
                    name,
                    f"{s['em']} / {n}",
                    f"{s['answered']} / {n}",
                    "{:.0f} / {:.0f}".format(*(s[k] for k in SPEC_COUNTERS[::-1])),
                    s["elapsed_s"],
                    f"{s['loadavg_start'][0]:.2f} -> {s['loadavg_end'][0]:.2f}",
                ]
                for name, s in stats.items()
            ],
        ),
        "",
        table(
            ["comparison", "same answer", "same trajectory", "EM changed"],
            [
                [name, f"{c['same_answer']} / {n}", f"{c['same_trajectory']} / {n}", c["em_changed"]]
                for name, c in comparisons.items()
            ],
        ),
    ]
    for name, c in comparisons.items():
        for d in c["differences"]:
            lines.append(
                f"\n- {name}, #{d['index']} {d['question']!r} (gold {d['golden_answers']}): "
                f"{d['answers'][0]!r} vs {d['answers'][1]!r}, parted at char {d['parted_at_char']} "
                f"after ...{d['context']!r}: {d['then'][0]!r} vs {d['then'][1]!r}"
            )
    payload = {
        "benchmark": "speculation",
        "args": {k: str(v) for k, v in vars(args).items()},
        "servers": stats,
        "comparisons": comparisons,
        "answers": {name: [o.answer for o in got] for name, got in outcomes.items()},
    }
    write_results(args.out, payload, "\n".join(lines))


if __name__ == "__main__":
    main()
