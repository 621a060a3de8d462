"""Load: many concurrent streaming and non-streaming requests, mixed across search modes, against the
real engine on loopback, for a bounded time and count. Every request must complete, or be refused
with a 429 carrying Retry-After; no 5xx, no hung connection; server memory reported at start and end.

    .venv/bin/python -m bench.stress [--concurrency 64] [--duration 180] [--max-requests 20000]

Exits non-zero when any request failed, hung or got a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench._util import ssrl_server, table, write_json
from service.protocol import SEARCH_MODES
from service.settings import EMBEDDED_MODEL_NAME

MODEL = EMBEDDED_MODEL_NAME
QUESTIONS = [
    "Who wrote Hamlet?",
    "What is photosynthesis?",
    "Where is Mount Everest?",
    "Who painted the Mona Lisa?",
]
MODES = list(SEARCH_MODES)


def rss_mib(pid: int) -> float:
    """Resident memory of the server and its children (vLLM's engine core), in MiB."""
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def request_body(rng: random.Random, *, prefill: bool = True) -> dict[str, Any]:
    """A random request of the mix; ``prefill`` starts half the real/entropy trajectories with a
    search (the backend is called whatever the model writes), else the model writes its own."""
    mode = rng.choice(MODES)
    question = rng.choice(QUESTIONS)
    messages: list[dict[str, str]] = [{"role": "user", "content": question}]
    if (
        prefill and mode in ("real", "entropy") and rng.random() < 0.5
    ):  # a prefilled search: the backend is called
        messages.append({"role": "assistant", "content": f"<search> {question} </search>"})
    body = {
        "model": MODEL,
        "messages": messages,
        "max_tokens": rng.choice([16, 32, 64]) if mode == "off" else 160,
        "stream": rng.random() < 0.5,
        "search_mode": mode,
        "search": {"top_k": 1},
    }
    if mode == "off":
        body.pop("search")
    return body


async def one(client: httpx.AsyncClient, body: dict[str, Any], timeout: float) -> tuple[str, float]:
    """The outcome of one request (ok, refused = 429 with Retry-After, 5xx, error, bad_stream, hung),
    and the Retry-After it carried."""
    try:
        async with asyncio.timeout(timeout):
            if body["stream"]:
                async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        await response.aread()
                        return classify(response), retry_after(response)
                    events = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
                if not events or events[-1] != "[DONE]" or any('"error"' in e[:12] for e in events):
                    return "bad_stream", 0.0
                return "ok", 0.0
            response = await client.post("/v1/chat/completions", json=body)
            if response.status_code == 200:
                json.loads(response.content)
                return "ok", 0.0
            return classify(response), retry_after(response)
    except TimeoutError:
        return "hung", 0.0
    except httpx.HTTPError as exc:
        return f"connection_error:{type(exc).__name__}", 0.0


def retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0


def classify(response: httpx.Response) -> str:
    if response.status_code == 429:
        return "refused" if response.headers.get("retry-after") else "429_without_retry_after"
    return "5xx" if response.status_code >= 500 else f"http_{response.status_code}"


async def drive(
    url: str,
    concurrency: int,
    duration: float,
    max_requests: int,
    timeout: float,
    *,
    prefill: bool = True,
    sample: Any = None,
) -> Counter[str]:
    """Closed-loop clients until ``duration`` or ``max_requests``; with ``prefill`` False the model
    writes its own searches. ``sample(done)``, if given, runs in a thread every ``sample.every``
    seconds along the way (soak.py's RSS sampler)."""
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + duration
    sent = 0
    limits = httpx.Limits(max_connections=concurrency + 8)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as client:

        async def worker(seed: int) -> None:
            nonlocal sent
            rng = random.Random(seed)
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                outcome, wait = await one(client, request_body(rng, prefill=prefill), timeout)
                outcomes[outcome] += 1
                if outcome == "refused":  # a well-behaved client waits as told
                    await asyncio.sleep(wait)

        async def sampler() -> None:
            while time.monotonic() < deadline and sent < max_requests:
                await asyncio.to_thread(sample, sum(outcomes.values()))
                await asyncio.sleep(sample.every)

        task = asyncio.create_task(sampler()) if sample is not None else None
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        if task is not None:
            task.cancel()
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--server-concurrency", type=int, default=48, help="the server's in-flight limit")
    parser.add_argument("--timeout", type=float, default=300.0, help="a request slower than this is 'hung'")
    parser.add_argument("--out", type=Path, default=Path("bench/results/stress.json"))
    args = parser.parse_args()
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with ssrl_server(
        log_dir, "--engine.max-model-len", "2048", "--max-concurrency", str(args.server_concurrency)
    ) as server:
        httpx.post(
            f"{server.url}/v1/chat/completions",
            timeout=120,
            json={"model": MODEL, "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 4},
        )
        rss_start = rss_mib(server.process.pid)
        started = time.monotonic()
        outcomes = asyncio.run(
            drive(server.url, args.concurrency, args.duration, args.max_requests, args.timeout)
        )
        elapsed = time.monotonic() - started
        alive = server.process.poll() is None  # the answers came from the server started here
        rss_end = rss_mib(server.process.pid)
        metrics = httpx.get(f"{server.url}/metrics").text
        running = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("ssrl_engine_unfinished_requests ")
        )
    failures = sum(n for k, n in outcomes.items() if k not in ("ok", "refused"))
    total = sum(outcomes.values())
    print(
        f"\n{total} requests in {elapsed:.0f} s at concurrency {args.concurrency} "
        f"(server limit {args.server_concurrency})"
    )
    print(table(["outcome", "requests"], sorted(outcomes.items())))
    print(
        table(
            ["server RSS at start MiB", "at end MiB", "engine requests left running", "failures"],
            [[rss_start, rss_end, int(running), failures]],
        )
    )
    write_json(
        args.out,
        {
            "benchmark": "stress",
            "args": vars(args) | {"out": str(args.out)},
            "outcomes": dict(outcomes),
            "seconds": elapsed,
            "rss_start_mib": rss_start,
            "rss_end_mib": rss_end,
            "engine_requests_left": running,
            "failures": failures,
            "server_alive": alive,
        },
    )
    return 1 if failures or running or not alive else 0


if __name__ == "__main__":
    raise SystemExit(main())
