"""Engine settings side by side: the same three workloads on servers that differ in one engine setting.

    python -m bench.engine_options                       # dtype and speculation, the four pairs
    python -m bench.engine_options --configs "bf16=--engine.dtype bfloat16" "fp32=--engine.dtype float32"
    python -m bench.engine_options --configs "auto=" "both-cores=VLLM_CPU_OMP_THREADS_BIND=0-1"

Each configuration gets a fresh server of this service (the embedded model, the local index), then
three workloads at the same concurrency: plain answers (``search_mode`` off, 64 tokens, temperature
1: OpenAI's default, what a plain client gets), real-mode trajectories (512 tokens, greedy: the agent
modes' default) and the same trajectories sampled at temperature 1 (as pass@k and rejection sampling
ask for them), on the first questions of bench/data/natural-dev.jsonl. Throughput is
reported as a ratio to the first configuration of the same run. ``--rounds 2`` runs every
configuration again in reverse order (the spread between rounds is the noise to read ratios against).
A configuration's words of the form ``NAME=value`` (an upper-case name) are set in the server's
environment instead of passed as flags (vLLM reads some settings, such as its CPU binding, only there).
Run it on a quiet machine (``uptime`` first): the load average is recorded at each row's start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._util import ROOT, ssrl_server, table, write_json

DEFAULT_CONFIGS = [
    "bf16+off=--engine.dtype bfloat16 --engine.speculation off",
    "bf16+ngram=--engine.dtype bfloat16 --engine.speculation ngram",
    "fp32+off=--engine.dtype float32 --engine.speculation off",
    "fp32+ngram=--engine.dtype float32 --engine.speculation ngram",
]
#: (label, search_mode, max_tokens, temperature)
WORKLOADS = (("off", "off", 64, 1.0), ("real", "real", 512, 0.0), ("real-T1", "real", 512, 1.0))
_ENV_WORD = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def parse_config(config: str) -> tuple[str, list[str], dict[str, str]]:
    """``NAME=words``: the configuration's name, its server flags, and its environment variables
    (the words ``VAR=value`` with an upper-case name)."""
    name, _, words = config.partition("=")
    flags: list[str] = []
    env: dict[str, str] = {}
    for word in shlex.split(words):
        match = _ENV_WORD.match(word)
        if match:
            env[match.group(1)] = match.group(2)
        else:
            flags.append(word)
    return name, flags, env


def questions(limit: int) -> list[str]:
    path = ROOT / "bench" / "data" / "natural-dev.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows][:limit]


async def workload(
    url: str, mode: str, max_tokens: int, asked: list[str], concurrency: int, temperature: float = 0.0
) -> dict[str, Any]:
    limit = asyncio.Semaphore(concurrency)
    tokens = 0
    answers: list[str | None] = []
    async with httpx.AsyncClient(base_url=url, timeout=900) as client:

        async def one(number: int, question: str) -> None:
            nonlocal tokens
            body = {
                "model": "ssrl-smollm2-135m",
                "messages": [{"role": "user", "content": question}],
                "search_mode": mode,
                "max_tokens": max_tokens,
                "temperature": temperature,
                "seed": number,
            }
            async with limit:
                response = await client.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            data = response.json()
            tokens += data["usage"]["completion_tokens"]
            answers.append(data["choices"][0]["message"].get("content"))

        started = time.perf_counter()
        await asyncio.gather(*(one(i, q) for i, q in enumerate(asked)))
        seconds = time.perf_counter() - started
    return {
        "questions": len(asked),
        "seconds": round(seconds, 2),
        "questions_per_s": round(len(asked) / seconds, 4),
        "completion_tokens_per_s": round(tokens / seconds, 2),
    }


def run(
    configs: list[tuple[str, list[str], dict[str, str]]], args: argparse.Namespace, log_dir: Path
) -> list[dict[str, Any]]:
    rows = []
    order = [*configs, *reversed(configs)] if args.rounds == 2 else configs
    for i, (name, extra, env) in enumerate(order):
        load_start = os.getloadavg()
        with ssrl_server(log_dir, *extra, env=env) as server:
            for label, mode, max_tokens, temperature in WORKLOADS:
                asked = questions(args.questions if mode == "off" else args.questions // 2)
                result = asyncio.run(
                    workload(server.url, mode, max_tokens, asked, args.concurrency, temperature)
                )
                rows.append({"round": 1 + i // len(configs), "config": name, "mode": label, **result})
                print(json.dumps(rows[-1]), flush=True)
        for row in rows[-len(WORKLOADS) :]:
            row["loadavg_start"], row["loadavg_end"] = load_start[0], os.getloadavg()[0]
    return rows


def ratios(rows: list[dict[str, Any]], baseline: str) -> list[list[Any]]:
    out = []
    for row in rows:
        base = next(
            r
            for r in rows
            if r["config"] == baseline and r["mode"] == row["mode"] and r["round"] == row["round"]
        )
        out.append(
            [
                row["round"],
                row["config"],
                row["mode"],
                row["questions"],
                row["seconds"],
                row["completion_tokens_per_s"],
                round(row["questions_per_s"] / base["questions_per_s"], 2),
                f"{row['loadavg_start']:.1f} -> {row['loadavg_end']:.1f}",
            ]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="NAME=server flags")
    parser.add_argument("--questions", type=int, default=32, help="plain answers per row (real: half)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, choices=(1, 2), default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engine_options.json")
    args = parser.parse_args()
    configs = [parse_config(c) for c in args.configs]
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(configs, args, Path(tmp))
    headers = ["round", "config", "mode", "questions", "seconds", "tokens/s", "q/s ratio", "load"]
    report = table(headers, ratios(rows, configs[0][0]))
    print(report)
    write_json(args.out, {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows})
    args.out.with_suffix(".md").write_text(report + "\n")


if __name__ == "__main__":
    main()
