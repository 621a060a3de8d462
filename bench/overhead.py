"""Overhead: this service in search mode ``off`` against vLLM's own OpenAI server, same model, same
machine, same prompts, at concurrency 1, 8 and 32: throughput ratio and added latency p50/p99.

    .venv/bin/python -m bench.overhead [--requests-per-level 2] [--max-tokens 32] [--repeat 2]

The servers run one after the other (never together: they would share the CPU), each with the same
engine settings (eager, 1 GiB KV cache, max_model_len 2048, prefix caching on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench._util import Server, free_port, percentile, ssrl_server, table, write_json
from service.engine.model_files import prepare_embedded_model
from service.engine.vllm import cuda_available, resolve_dtype
from service.settings import EMBEDDED_MODEL_NAME, Settings

MODEL = EMBEDDED_MODEL_NAME
PROMPTS = [
    "Write one sentence about the sea.",
    "Name three colours.",
    "What is the capital of France?",
    "Describe a cat in a few words.",
    "Give me a short greeting.",
    "What is two plus two?",
    "Say something about mountains.",
    "List two fruits.",
]


def vllm_server(
    model_dir: Path,
    log_dir: Path,
    *,
    log_stats: bool = False,
    max_num_seqs: int = 64,
    speculative_config: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Server:
    """vLLM's own OpenAI server on ``model_dir`` with this service's engine settings (the baseline of
    the benchmarks), in the dtype this service's ``engine.dtype=auto`` picks here (float32 on a CPU
    without native bf16), so both serve the same arithmetic; with ``log_stats`` its Prometheus
    metrics are on, as by vLLM's default; with ``speculative_config`` it speculates as told
    (``--speculative-config JSON``)."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        MODEL,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--max-model-len",
        "2048",
        "--enforce-eager",
        "--dtype",
        resolve_dtype("auto", on_gpu=cuda_available()),
        "--enable-prefix-caching",
        "--kv-cache-memory-bytes",
        str(1024**3),
        *([] if log_stats else ["--disable-log-stats"]),
        "--max-num-seqs",
        str(max_num_seqs),
        *(["--speculative-config", json.dumps(speculative_config)] if speculative_config else []),
    ]
    return Server(args, port, log_dir / f"vllm-{port}.log", env=env)


async def load(url: str, concurrency: int, requests: int, max_tokens: int) -> dict[str, float]:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    tokens = 0
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(i: int) -> None:
            nonlocal tokens
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                "max_tokens": max_tokens,
                "temperature": 0,
            }
            async with limit:
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=body)
                latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            tokens += response.json()["usage"]["completion_tokens"]

        await one(0)  # warm-up, not counted
        latencies.clear()
        tokens = 0
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        elapsed = time.perf_counter() - started
    return {
        "tokens_per_s": tokens / elapsed,
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "requests": requests,
        "completion_tokens": tokens,
    }


def measure(
    server: Server, levels: list[int], per_level: int, max_tokens: int
) -> dict[int, dict[str, float]]:
    return {c: asyncio.run(load(server.url, c, max(c * per_level, 8), max_tokens)) for c in levels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--requests-per-level", type=int, default=2, help="requests = concurrency x this (min 8)"
    )
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2, help="runs, to show the benchmark's own spread")
    parser.add_argument("--out", type=Path, default=Path("bench/results/overhead.json"))
    args = parser.parse_args()
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    model_dir = prepare_embedded_model(Settings().cache_dir)
    runs = []
    for run in range(args.repeat):
        with vllm_server(model_dir, log_dir) as server:
            baseline = measure(server, args.levels, args.requests_per_level, args.max_tokens)
        with ssrl_server(
            log_dir,
            "--engine.max-model-len",
            "2048",
            "--engine.kv-cache-gib",
            "1",
            "--max-concurrency",
            "1000",
            "--search-mode",
            "off",
        ) as server:
            ours = measure(server, args.levels, args.requests_per_level, args.max_tokens)
        rows = []
        for level in args.levels:
            b, o = baseline[level], ours[level]
            rows.append(
                {
                    "concurrency": level,
                    "vllm_tokens_per_s": b["tokens_per_s"],
                    "ssrl_tokens_per_s": o["tokens_per_s"],
                    "throughput_ratio": o["tokens_per_s"] / b["tokens_per_s"],
                    "added_p50_ms": 1000 * (o["p50_s"] - b["p50_s"]),
                    "added_p99_ms": 1000 * (o["p99_s"] - b["p99_s"]),
                    "vllm": b,
                    "ssrl": o,
                }
            )
        runs.append(rows)
        print(f"\nrun {run + 1}: at most {args.max_tokens} tokens per request, greedy")
        print(
            table(
                [
                    "concurrency",
                    "vLLM tok/s",
                    "ssrl tok/s",
                    "throughput ratio",
                    "added p50 ms",
                    "added p99 ms",
                ],
                [
                    [
                        r["concurrency"],
                        r["vllm_tokens_per_s"],
                        r["ssrl_tokens_per_s"],
                        r["throughput_ratio"],
                        r["added_p50_ms"],
                        r["added_p99_ms"],
                    ]
                    for r in rows
                ],
            )
        )
    if args.repeat > 1:
        for i, level in enumerate(args.levels):
            ratios = [rows[i]["throughput_ratio"] for rows in runs]
            print(f"concurrency {level}: throughput ratio over runs {', '.join(f'{r:.3f}' for r in ratios)}")
    write_json(args.out, {"benchmark": "overhead", "args": vars(args) | {"out": str(args.out)}, "runs": runs})


if __name__ == "__main__":
    main()
