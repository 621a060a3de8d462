"""Search chaos under load: many concurrent model-driven real-mode trajectories (no prefill: the
embedded model writes its own <search>) while the search server flips between healthy, slow (past the
timeout), 500s, 429 with Retry-After and dropped connections (bench/flapping_searxng.py).

Every request must complete (a failed search becomes a fallback marked in the trace), with no 5xx and
none hung; the engine's running requests must be back to 0; the backend's metrics must count each
failure kind as often as the search server caused it.

    .venv/bin/python -m bench.search_chaos [--concurrency 64] [--duration 120] [--period 2]

Loopback only, bounded in time and count. Exits non-zero when any of that fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench._util import percentile, ssrl_server, table, write_json
from bench.flapping_searxng import ERROR_KIND, PHASES, ChaosSearch
from service.settings import EMBEDDED_MODEL_NAME

#: Distinct questions, so that the model's searches are mostly distinct calls (identical searches in
#: flight are coalesced into one call).
QUESTIONS = [
    json.loads(line)["question"]
    for line in (Path(__file__).parent / "data" / "ssrl-test.jsonl").read_text().splitlines()
    if line.strip()
]

Outcome = tuple[str, dict[str, Any] | None, float]


async def one(client: httpx.AsyncClient, index: int, hung_after: float, max_tokens: int = 400) -> Outcome:
    """One real-mode request (streamed when ``index`` is odd): ``ok`` with its search trace, or what
    went wrong, and its latency."""
    stream = index % 2 == 1
    body = {
        "model": EMBEDDED_MODEL_NAME,
        "messages": [{"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}],
        "max_tokens": max_tokens,
        "search_mode": "real",
        "stream": stream,
    }
    started = time.monotonic()
    try:
        async with asyncio.timeout(hung_after):
            if not stream:
                response = await client.post("/v1/chat/completions", json=body)
                if response.status_code != 200:
                    return f"http_{response.status_code}", None, time.monotonic() - started
                return "ok", response.json()["search_trace"], time.monotonic() - started
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    return f"http_{response.status_code}", None, time.monotonic() - started
                events = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    except TimeoutError:
        return "hung", None, time.monotonic() - started
    except httpx.HTTPError as exc:
        return f"connection_error:{type(exc).__name__}", None, time.monotonic() - started
    elapsed = time.monotonic() - started
    if not events or events[-1] != "[DONE]":
        return "no_done", None, elapsed
    chunks = [json.loads(e) for e in events[:-1]]
    if any("error" in c for c in chunks):
        return "error_frame", None, elapsed
    traces = [c["search_trace"] for c in chunks if c.get("search_trace")]
    return ("ok", traces[-1], elapsed) if traces else ("no_trace", None, elapsed)


async def drive(
    url: str,
    clients: int,
    *,
    per_client: int,
    duration: float,
    hung_after: float,
    headers: dict[str, str] | None = None,
    max_tokens: int = 400,
) -> list[Outcome]:
    """``clients`` closed-loop clients, each sending up to ``per_client`` requests of ``max_tokens``
    until ``duration``."""
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=None, limits=limits) as client:

        async def worker(w: int) -> list[Outcome]:
            out = []
            for i in range(per_client):
                if time.monotonic() >= deadline:
                    break
                out.append(await one(client, w * per_client + i, hung_after, max_tokens))
            return out

        per_worker = await asyncio.gather(*(worker(w) for w in range(clients)))
    return [outcome for outcomes in per_worker for outcome in outcomes]


def samples(metrics: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): float(s.value)
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=120.0, help="no new request after this (s)")
    parser.add_argument("--per-client", type=int, default=50, help="most requests per client")
    parser.add_argument("--period", type=float, default=2.0, help="seconds per search-server phase")
    parser.add_argument("--search-timeout", type=float, default=1.0)
    parser.add_argument("--hung-after", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/search_chaos.json"))
    args = parser.parse_args()
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with ChaosSearch(period=args.period, slow_seconds=args.search_timeout * 3) as chaos:
        with ssrl_server(
            log_dir,
            "--engine.max-model-len", "2048",
            "--max-concurrency", str(args.concurrency),
            *chaos.server_args(timeout=args.search_timeout, retries=1, max_retry_wait=0.2),
        ) as server:  # fmt: skip
            started = time.monotonic()
            outcomes = asyncio.run(
                drive(
                    server.url,
                    args.concurrency,
                    per_client=args.per_client,
                    duration=args.duration,
                    hung_after=args.hung_after,
                )
            )
            elapsed = time.monotonic() - started
            metrics = samples(httpx.get(f"{server.url}/metrics", timeout=10).text)
        served = Counter(chaos.served)
    kinds = Counter(o for o, _, _ in outcomes)
    steps = [step for _, trace, _ in outcomes if trace for step in trace["steps"]]
    sources = Counter(step["source"] for step in steps)
    fallback_errors = Counter(step.get("error") for step in steps if step["source"] == "fallback")
    counted = {
        kind: metrics.get(
            ("ssrl_search_errors_total", frozenset({("backend", "searxng"), ("kind", kind)})), 0.0
        )
        for kind in ERROR_KIND.values()
    }
    mismatched = {k: (counted[k], served[p]) for p, k in ERROR_KIND.items() if counted[k] != served[p]}
    running = metrics.get(("ssrl_engine_unfinished_requests", frozenset()), -1.0)
    server_5xx = sum(
        v
        for (name, labels), v in metrics.items()
        if name == "ssrl_requests_total"
        and dict(labels)["route"] == "/v1/chat/completions"
        and dict(labels)["status"][0] == "5"
    )
    latencies = [t for o, _, t in outcomes if o == "ok"]
    print(
        f"\n{len(outcomes)} requests in {elapsed:.0f} s from {args.concurrency} clients, "
        f"search phases of {args.period} s"
    )
    print(table(["outcome", "requests"], sorted(kinds.items())))
    phase_rows = [
        [p, served[p], ERROR_KIND.get(p, "-"), counted.get(ERROR_KIND.get(p, ""), "-")] for p in PHASES
    ]
    print(table(["search server phase", "calls", "counted as", "ssrl_search_errors_total"], phase_rows))
    step_rows = [[len(steps), sources["real"], sources["fallback"], dict(fallback_errors)]]
    print(table(["search steps", "real", "fallback", "fallback by error"], step_rows))
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(
        table(
            ["p50 s", "p99 s", "engine requests left", "server 5xx"],
            [[p50, p99, int(running), int(server_5xx)]],
        )
    )
    write_json(
        args.out,
        {
            "benchmark": "search_chaos",
            "args": vars(args) | {"out": str(args.out)},
            "seconds": elapsed,
            "outcomes": dict(kinds),
            "search_server_calls": dict(served),
            "search_errors_counted": counted,
            "steps": {"total": len(steps), **dict(sources)},
            "fallback_errors": {str(k): v for k, v in fallback_errors.items()},
            "p50_s": percentile(latencies, 50),
            "p99_s": percentile(latencies, 99),
            "engine_requests_left": running,
            "server_5xx": server_5xx,
        },
    )
    ok = set(kinds) == {"ok"} and not mismatched and running == 0 and server_5xx == 0
    if mismatched:
        print(f"metrics do not match the search server: {mismatched}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
