"""Overload: more clients than ``--max-concurrency`` admits. The excess is refused with 429 and
Retry-After at once (never queued), so the requests that are served keep their latency: their p99 is
compared, in the same run on the same server, with the p99 at the limit (as many clients as it
admits, nothing refused) and with one client alone.

    .venv/bin/python -m bench.overload [--limit 8] [--overload 4] [--duration 40]

Loopback only, bounded in time. Exits non-zero when the overloaded p99 is more than 2x the p99 at
the limit, a refusal lacks Retry-After, or any request failed otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench._util import percentile, ssrl_server, table, write_json
from service.settings import EMBEDDED_MODEL_NAME

BODY = {
    "model": EMBEDDED_MODEL_NAME,
    "messages": [{"role": "user", "content": "Write a few sentences about the sea."}],
    "max_tokens": 32,
    "temperature": 0,
}


async def phase(
    url: str, clients: int, duration: float, max_requests: int
) -> tuple[list[float], Counter[str]]:
    """Closed-loop clients for ``duration`` seconds: served latencies and outcomes. A refused client
    waits as its Retry-After says, then tries again."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < deadline and sum(outcomes.values()) < max_requests:
                started = time.monotonic()
                try:
                    response = await client.post("/v1/chat/completions", json=BODY)
                except httpx.HTTPError as exc:
                    outcomes[f"error:{type(exc).__name__}"] += 1
                    continue
                if response.status_code == 200:
                    latencies.append(time.monotonic() - started)
                    outcomes["served"] += 1
                elif response.status_code == 429 and response.headers.get("retry-after"):
                    outcomes["refused"] += 1
                    await asyncio.sleep(float(response.headers["retry-after"]))
                else:
                    outcomes[f"http_{response.status_code}"] += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=8, help="the server's --max-concurrency")
    parser.add_argument("--overload", type=int, default=4, help="clients = limit x this when overloaded")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds per phase")
    parser.add_argument("--max-requests", type=int, default=5000, help="per phase")
    parser.add_argument("--out", type=Path, default=Path("bench/results/overload.json"))
    args = parser.parse_args()
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    phases: dict[str, dict[str, Any]] = {}
    with ssrl_server(
        log_dir,
        "--engine.max-model-len",
        "2048",
        "--max-concurrency",
        str(args.limit),
        "--search-mode",
        "off",
    ) as server:
        httpx.post(f"{server.url}/v1/chat/completions", json=BODY, timeout=120)  # warm up
        for name, clients in [
            ("one client", 1),
            ("at the limit", args.limit),
            ("overloaded", args.limit * args.overload),
        ]:
            latencies, outcomes = asyncio.run(phase(server.url, clients, args.duration, args.max_requests))
            phases[name] = {
                "clients": clients,
                "outcomes": dict(outcomes),
                "p50_s": percentile(latencies, 50),
                "p99_s": percentile(latencies, 99),
                "served_per_s": len(latencies) / args.duration,
            }
    at_limit = phases["at the limit"]["p99_s"]
    ratio = phases["overloaded"]["p99_s"] / at_limit
    rows = [
        [name, p["clients"], p["outcomes"].get("served", 0), p["outcomes"].get("refused", 0),
         p["p50_s"], p["p99_s"], p["p99_s"] / at_limit, p["served_per_s"]]
        for name, p in phases.items()
    ]  # fmt: skip
    print(f"\nserver --max-concurrency {args.limit}, {args.duration:.0f} s per phase")
    print(
        table(
            [
                "phase",
                "clients",
                "served",
                "refused (429 + Retry-After)",
                "p50 s",
                "p99 s",
                "p99 / at limit",
                "served/s",
            ],
            rows,
        )
    )
    failures = sum(
        n for p in phases.values() for k, n in p["outcomes"].items() if k not in ("served", "refused")
    )
    write_json(
        args.out,
        {
            "benchmark": "overload",
            "args": vars(args) | {"out": str(args.out)},
            "phases": phases,
            "p99_overloaded_over_at_limit": ratio,
            "p99_overloaded_over_one_client": phases["overloaded"]["p99_s"] / phases["one client"]["p99_s"],
            "failures": failures,
        },
    )
    refused = phases["overloaded"]["outcomes"].get("refused", 0)
    return 0 if ratio <= 2.0 and not failures and refused else 1


if __name__ == "__main__":
    raise SystemExit(main())
