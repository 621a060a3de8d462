"""Search path: requests per second the loop sustains against a search server with 50 ms latency,
with a scripted engine (no model), and what the cache and coalescing save on repeated queries.

    .venv/bin/python -m bench.search_path [--requests 400] [--concurrency 32] [--repeat 2]

Baseline in the same run: the same requests in search mode ``self`` (no search at all).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from bench._util import free_port, table, write_json
from service.app import create_app
from service.engine.scripted import ScriptedEngine, search_then
from service.settings import EMBEDDED_MODEL_NAME, Settings


def search_server(latency: float) -> tuple[FastAPI, dict[str, int]]:
    """A SearXNG-shaped JSON search API that takes ``latency`` seconds per call."""
    app = FastAPI()
    counts = {"calls": 0}

    @app.get("/search")
    async def search(q: str, format: str = "json") -> dict[str, Any]:  # noqa: A002 - SearXNG's name
        counts["calls"] += 1
        await asyncio.sleep(latency)
        return {
            "query": q,
            "results": [
                {"title": f"{q} {i}", "url": f"https://e/{i}", "content": f"About {q}."} for i in range(3)
            ],
        }

    return app, counts


script = search_then("<answer> done </answer>")


async def drive(app: Any, mode: str, questions: list[str], concurrency: int) -> dict[str, float]:
    limit = asyncio.Semaphore(concurrency)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=120) as client:

        async def one(question: str) -> None:
            async with limit:
                body = {
                    "model": EMBEDDED_MODEL_NAME,
                    "messages": [{"role": "user", "content": question}],
                    "search_mode": mode,
                    "max_tokens": 64,
                }
                response = await client.post("/v1/chat/completions", json=body)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(q) for q in questions))
        elapsed = time.perf_counter() - started
        metrics = (await client.get("/metrics")).text
    return {"seconds": elapsed, "rps": len(questions) / elapsed, **parse(metrics)}


def parse(metrics: str) -> dict[str, float]:
    out = {"cache_hits": 0.0, "coalesced": 0.0, "backend_calls": 0.0}
    names = {
        "ssrl_search_cache_hits_total": "cache_hits",
        "ssrl_search_coalesced_total": "coalesced",
        "ssrl_search_calls_total": "backend_calls",
    }
    for line in metrics.splitlines():
        for name, key in names.items():
            if line.startswith(name + "{"):
                out[key] += float(line.rsplit(" ", 1)[1])
    return out


async def one_run(base_url: str, requests: int, concurrency: int, cache_dir: Path) -> list[dict[str, Any]]:
    def app() -> Any:
        settings = Settings(
            cache_dir=cache_dir,
            max_concurrency=10_000,
            search={"backend": "searxng", "searxng": {"base_url": base_url}, "concurrency": 64},
        )
        return create_app(settings, engine=ScriptedEngine(script))

    unique = [f"question number {i}" for i in range(requests)]
    repeated = [f"popular question {i % 10}" for i in range(requests)]
    rows = []
    for label, mode, questions in (
        ("self (no search): baseline", "self", unique),
        ("real, unique queries", "real", unique),
        ("real, 10 distinct queries repeated", "real", repeated),
    ):
        application = app()
        async with application.router.lifespan_context(application):
            result = await drive(application, mode, questions, concurrency)
        rows.append({"case": label, "requests": requests, **result})
    base = rows[0]["rps"]
    for row in rows:
        row["rps_ratio_to_baseline"] = row["rps"] / base
        searches = row["backend_calls"] + row["cache_hits"] + row["coalesced"]
        row["cache_hit_rate"] = row["cache_hits"] / searches if searches else 0.0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=2, help="runs, to show the benchmark's own spread")
    parser.add_argument("--out", type=Path, default=Path("bench/results/search_path.json"))
    args = parser.parse_args()

    api, counts = search_server(args.latency)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    # warm-up (imports, first app start), not counted
    asyncio.run(one_run(f"http://127.0.0.1:{port}", 32, 8, args.out.parent / "cache"))
    runs = []
    for run in range(args.repeat):
        rows = asyncio.run(
            one_run(f"http://127.0.0.1:{port}", args.requests, args.concurrency, args.out.parent / "cache")
        )
        runs.append(rows)
        print(
            f"\nrun {run + 1}: {args.requests} requests, concurrency {args.concurrency}, "
            f"search latency {args.latency * 1000:.0f} ms"
        )
        print(
            table(
                [
                    "case",
                    "req/s",
                    "ratio to baseline",
                    "backend calls",
                    "cache hits",
                    "coalesced",
                    "cache hit rate",
                ],
                [
                    [
                        r["case"],
                        r["rps"],
                        r["rps_ratio_to_baseline"],
                        int(r["backend_calls"]),
                        int(r["cache_hits"]),
                        int(r["coalesced"]),
                        r["cache_hit_rate"],
                    ]
                    for r in rows
                ],
            )
        )
    server.should_exit = True
    thread.join(10)
    if args.repeat > 1:
        ratios = [[r["rps_ratio_to_baseline"] for r in rows] for rows in runs]
        spread = [max(c) / min(c) - 1 for c in zip(*ratios, strict=True)]
        print("\nspread between runs (max/min - 1) of each ratio: " + ", ".join(f"{s:.1%}" for s in spread))
    write_json(
        args.out,
        {
            "benchmark": "search_path",
            "args": vars(args) | {"out": str(args.out)},
            "runs": runs,
            "search_server_calls": counts["calls"],
        },
    )


if __name__ == "__main__":
    main()
