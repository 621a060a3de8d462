"""Soak: mixed off/self/real/entropy traffic, streaming and not, against the real engine on loopback
for a bounded time and count, sampling the resident memory of the server process and of vLLM's
engine core process every ``--sample-every`` seconds. Writes the samples (JSON), a plot (PNG), and
with ``--tracemalloc`` the server's Python allocations that grew most between the second sample
after warm-up and the last (tracing starts at the end of warm-up; snapshots taken in the server
process on SIGUSR1).

    .venv/bin/python -m bench.soak [--duration 1200] [--concurrency 16] [--warmup 300] [--tracemalloc]

Exits non-zero when any request failed, hung or got a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

import httpx
import psutil

from bench._util import Server, free_port, table, write_json
from bench.stress import drive
from service.settings import EMBEDDED_MODEL_NAME

SNAPSHOT_ENV = "SSRL_SOAK_SNAPSHOTS"


def traced_server(argv: list[str]) -> int:
    """``ssrl-serve`` whose SIGUSR1s trace its Python allocations: the first starts tracemalloc (after
    warm-up: start-up is not slowed, and vLLM's engine core, forked earlier, is not traced), the second
    dumps a snapshot, and each later one the latest snapshot, into $SSRL_SOAK_SNAPSHOTS."""
    from service.__main__ import main

    directory = Path(os.environ[SNAPSHOT_ENV])
    signals = 0

    def on_signal(*_: object) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            tracemalloc.start(4)
            return
        name = "snapshot-001.bin" if signals == 2 else "snapshot-last.bin"
        tracemalloc.take_snapshot().dump(str(directory / name))

    signal.signal(signal.SIGUSR1, on_signal)
    return main(argv)


def processes(pid: int) -> tuple[psutil.Process, list[psutil.Process]]:
    server = psutil.Process(pid)
    return server, server.children(recursive=True)


def rss_mib(pid: int) -> tuple[float, float]:
    """Resident memory of the server process and of its children (vLLM's engine core), in MiB."""
    server, children = processes(pid)
    engine = 0
    for child in children:
        try:
            engine += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return server.memory_info().rss / 2**20, engine / 2**20


class Sampler:
    def __init__(self, pid: int, every: float, traced: bool, warmup: float) -> None:
        self.pid = pid
        self.every = every
        self.traced = traced
        self.warmup = warmup
        self.started = time.monotonic()
        self.rows: list[dict[str, float]] = []
        self.snapshots: list[float] = []  # elapsed seconds at each SIGUSR1

    def __call__(self, done: int) -> None:
        elapsed = time.monotonic() - self.started
        server, engine = rss_mib(self.pid)
        self.rows.append({"t_s": elapsed, "server_mib": server, "engine_mib": engine, "requests": done})
        print(
            f"{elapsed:7.0f} s  server {server:7.0f} MiB  engine {engine:7.0f} MiB  {done} requests",
            flush=True,
        )
        if self.traced and elapsed >= self.warmup:
            os.kill(self.pid, signal.SIGUSR1)
            self.snapshots.append(elapsed)


def growth(rows: list[dict[str, float]], key: str, since: float) -> tuple[float, float, float]:
    """(first, last, percent change) of ``key`` over the samples from ``since`` seconds on."""
    window = [r[key] for r in rows if r["t_s"] >= since]
    if len(window) < 2:
        return float("nan"), float("nan"), float("nan")
    return window[0], window[-1], 100 * (window[-1] - window[0]) / window[0]


def top_growth(directory: Path, limit: int = 12) -> list[str]:
    """The allocation sites that grew most between the first and last snapshots."""
    files = sorted(directory.glob("snapshot-*.bin"))
    if len(files) < 2:
        return []
    first, last = tracemalloc.Snapshot.load(str(files[0])), tracemalloc.Snapshot.load(str(files[-1]))
    stats = last.compare_to(first, "lineno")
    total = sum(s.size_diff for s in stats) / 2**20
    lines = [f"traced Python memory change {files[0].name} -> {files[-1].name}: {total:+.2f} MiB"]
    lines += [str(s) for s in stats[:limit]]
    return lines


def plot(rows: list[dict[str, float]], warmup: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [r["t_s"] / 60 for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(minutes, [r["server_mib"] for r in rows], marker="o", label="server process (API, agent loop)")
    ax.plot(minutes, [r["engine_mib"] for r in rows], marker="s", label="vLLM engine core process")
    ax.plot(
        minutes,
        [r["server_mib"] + r["engine_mib"] for r in rows],
        marker=".",
        linestyle="--",
        label="together",
    )
    ax.axvline(warmup / 60, color="grey", linestyle=":", label="end of warm-up")
    ax.set_xlabel("minutes of load")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(title)
    ax.legend(loc="center right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=1200.0, help="seconds of load")
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--server-concurrency", type=int, default=48)
    parser.add_argument("--sample-every", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=300.0, help="seconds left out of the growth figure")
    parser.add_argument("--timeout", type=float, default=300.0, help="a request slower than this is 'hung'")
    parser.add_argument("--tracemalloc", action="store_true", help="snapshot the server's allocations")
    parser.add_argument("--out", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args()
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    snapshots = log_dir / "soak-snapshots"
    port = free_port()
    serve_args = ["--port", str(port), "--log-level", "warning", "--engine.max-model-len", "2048",
                  "--max-concurrency", str(args.server_concurrency)]  # fmt: skip
    if args.tracemalloc:
        snapshots.mkdir(exist_ok=True)
        for old in snapshots.glob("snapshot-*.bin"):
            old.unlink()
        os.environ[SNAPSHOT_ENV] = str(snapshots)
        command = [
            sys.executable,
            "-c",
            f"import sys, bench.soak as s; sys.exit(s.traced_server({serve_args!r}))",
        ]
    else:
        command = [sys.executable, "-m", "service", *serve_args]
    with Server(command, port, log_dir / f"soak-{port}.log") as server:
        httpx.post(
            f"{server.url}/v1/chat/completions",
            timeout=120,
            json={
                "model": EMBEDDED_MODEL_NAME,
                "messages": [{"role": "user", "content": "warm up"}],
                "max_tokens": 4,
            },
        )
        sampler = Sampler(server.process.pid, args.sample_every, args.tracemalloc, args.warmup)
        outcomes = asyncio.run(
            drive(
                server.url,
                args.concurrency,
                args.duration,
                args.max_requests,
                args.timeout,
                prefill=False,
                sample=sampler,
            )
        )
        sampler(sum(outcomes.values()))
        if args.tracemalloc:
            time.sleep(5)  # let the last snapshot finish writing
        running = next(
            float(line.split()[-1])
            for line in httpx.get(f"{server.url}/metrics").text.splitlines()
            if line.startswith("ssrl_engine_unfinished_requests ")
        )
    elapsed = sampler.rows[-1]["t_s"]
    rows = sampler.rows
    failures = sum(n for k, n in outcomes.items() if k not in ("ok", "refused"))
    figures = {key: growth(rows, key, args.warmup) for key in ("server_mib", "engine_mib")}
    print(f"\n{sum(outcomes.values())} requests in {elapsed:.0f} s from {args.concurrency} clients")
    print(table(["outcome", "requests"], sorted(outcomes.items())))
    print(
        table(
            ["process", f"RSS at {args.warmup:.0f} s MiB", "at end MiB", "change after warm-up %"],
            [[key.removesuffix("_mib"), *values] for key, values in figures.items()],
        )
    )
    traced = top_growth(snapshots) if args.tracemalloc else []
    print("\n".join(traced))
    png = args.out.with_suffix(".png")
    plot(rows, args.warmup, png, f"soak: {elapsed / 60:.0f} min, {args.concurrency} clients, mixed modes")
    write_json(
        args.out,
        {
            "benchmark": "soak",
            "args": vars(args) | {"out": str(args.out)},
            "seconds": elapsed,
            "outcomes": dict(outcomes),
            "samples": rows,
            "growth_after_warmup": {
                k: {"first_mib": v[0], "last_mib": v[1], "percent": v[2]} for k, v in figures.items()
            },
            "tracemalloc_top_growth": traced,
            "engine_requests_left": running,
            "failures": failures,
            "load_average_at_end": os.getloadavg(),
        },
    )
    print(f"wrote {args.out} and {png}")
    return 1 if failures or running else 0


if __name__ == "__main__":
    raise SystemExit(main())
