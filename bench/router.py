"""Replicas behind vllm-router on loopback: session affinity vs round robin, and failover.

Two replicas of the service (the embedded model, ``off`` mode, 32-token KV blocks: the smallest
vLLM's CPU backend takes) run behind the vLLM project's router (``vllm-router``, PyPI).
Multi-request trajectories (multi-turn conversations whose first message is a distinct Wikipedia
summary from the embedded corpus) go through the SDK, which sends the same ``X-Session-ID`` for
every request of one conversation. Each request is attributed to the replica that served it by the
replicas' own request counters (so requests run one at a time), and its prefix-cache share is
``usage.prompt_tokens_details.cached_tokens``.

  affinity      --policy consistent_hash: every turn of a conversation on one replica
  round robin   --policy round_robin: the baseline, same run, other conversations
  failover      consistent_hash again, trajectories in parallel; one replica is SIGKILLed while it
                serves some of them: the router sends new work to the other, the SDK retries what
                was interrupted, and every trajectory finishes within a deadline

    .venv/bin/python -m bench.router                 # --trajectories 20 --turns 3 --max-tokens 16
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._util import ROOT, Server, free_port, ssrl_server, table, write_json
from service.search.corpus import embedded_corpus_path, read_embedded
from ssrl_client import AsyncClient, Client

KEY = "router-bench-key"
FOLLOW_UPS = ("Say that again in one short sentence.", "And what else?", "Thanks. One more detail?")
CHAT_OK = 'ssrl_requests_total{route="/v1/chat/completions",status="200"}'


def router_binary() -> str:
    found = shutil.which("vllm-router") or str(Path(sys.executable).with_name("vllm-router"))
    if not Path(found).exists():
        raise RuntimeError("vllm-router is not installed (pip install vllm-router)")
    return found


def start_router(policy: str, workers: Sequence[str], log_dir: Path, *, retries: bool = True) -> Server:
    """The vLLM project's router in front of ``workers``; unhealthy workers are noticed within ~1 s.
    ``retries=False`` turns the router's own retries off, so that failed requests reach the client."""
    port = free_port()
    args = [
        router_binary(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--policy",
        policy,
        "--worker-urls",
        *workers,
        "--health-check-interval-secs",
        "1",
        "--health-failure-threshold",
        "1",
        "--request-timeout-secs",
        "120",
        "--log-level",
        "warning",
        *([] if retries else ["--disable-retries"]),
    ]
    return Server(args, port, log_dir / f"router-{policy}-{port}.log", timeout=60)


def prepare_model() -> None:
    """Convert and merge the embedded model once, before the replicas start side by side (each would
    otherwise convert it into the same cache directory at the same time)."""
    code = (
        "from service.engine.model_files import resolve_model as r; "
        "from service.settings import Settings as S; r(None, S().cache_dir)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=900)


def start_replicas(log_dir: Path, count: int) -> list[Server]:
    """``count`` replicas of the service, started in parallel; none is left running on a failure."""
    prepare_model()
    extra = (
        "--search-mode",
        "off",
        "--api-keys",
        KEY,
        "--engine.max-model-len",
        "2048",
        "--engine.block-size",
        "32",
        "--engine.max-num-seqs",
        "16",
    )
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(ssrl_server, log_dir, *extra) for _ in range(count)]
    started = [f.result() for f in futures if f.exception() is None]
    if len(started) < count:
        for server in started:
            server.stop()
        raise next(e for f in futures if (e := f.exception()) is not None)
    return started


def openings(count: int, offset: int) -> list[str]:
    """First messages: a distinct Wikipedia summary each (long enough to span several KV blocks)."""
    docs = read_embedded(embedded_corpus_path()).docs
    picked = [d for d in docs if 400 <= len(d.text) <= 900][offset : offset + count]
    return [f"Read this article.\n\n{d.title}: {d.text}\n\nWhat is it about?" for d in picked]


def served_counts(replicas: Sequence[Server]) -> list[float]:
    counts = []
    for replica in replicas:
        try:
            # a live replica under load can take seconds to answer; a dead one refuses at once
            text = httpx.get(replica.url + "/metrics", timeout=30).text
        except httpx.HTTPError:
            counts.append(float("nan"))
            continue
        line = next((ln for ln in text.splitlines() if ln.startswith(CHAT_OK)), None)
        counts.append(float(line.rsplit(" ", 1)[1]) if line else 0.0)
    return counts


@dataclass
class Turn:
    trajectory: int
    turn: int
    replica: int
    prompt_tokens: int
    cached_tokens: int


def run_sequential(
    router: str, replicas: Sequence[Server], firsts: Sequence[str], turns: int, max_tokens: int
) -> list[Turn]:
    """Trajectories one request at a time, each request attributed to the replica that served it."""
    out: list[Turn] = []
    with Client(base_url=router, api_key=KEY, model="ssrl-smollm2-135m", max_retries=0) as client:
        for t, first in enumerate(firsts):
            messages: list[dict[str, Any]] = [{"role": "user", "content": first}]
            for k in range(turns):
                before = served_counts(replicas)
                result = client.chat(messages, search_mode="off", max_tokens=max_tokens, temperature=0)
                after = served_counts(replicas)
                moved = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if b > a]
                if len(moved) != 1:
                    raise RuntimeError(f"request served by {moved} (counts {before} -> {after})")
                usage = result.usage
                if usage is None:
                    raise RuntimeError("a response without usage")
                out.append(Turn(t, k, moved[0], usage.prompt_tokens, usage.cached_tokens))
                messages += [
                    {"role": "assistant", "content": result.answer or ""},
                    {"role": "user", "content": FOLLOW_UPS[k % len(FOLLOW_UPS)]},
                ]
    return out


def summarise(turns: Sequence[Turn]) -> dict[str, Any]:
    by_trajectory: dict[int, set[int]] = {}
    for turn in turns:
        by_trajectory.setdefault(turn.trajectory, set()).add(turn.replica)
    later = [t for t in turns if t.turn > 0]
    prompt = sum(t.prompt_tokens for t in later)
    cached = sum(t.cached_tokens for t in later)
    return {
        "trajectories": len(by_trajectory),
        "requests": len(turns),
        "on_one_replica": sum(len(r) == 1 for r in by_trajectory.values()),
        "requests_per_replica": [sum(t.replica == i for t in turns) for i in range(2)],
        "continuation_prompt_tokens": prompt,
        "continuation_cached_tokens": cached,
        "continuation_cached_share": round(cached / prompt, 4) if prompt else 0.0,
    }


def kill(server: Server) -> None:
    """SIGKILL the replica and its engine process (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(30)


async def failover(
    router: str,
    replicas: Sequence[Server],
    firsts: Sequence[str],
    max_tokens: int,
    deadline: float,
    kill_victim: Callable[[Server], None] = kill,
) -> dict[str, Any]:
    """Trajectories of two turns in parallel; the first replica seen generating for some of them
    (whichever the router's hash gave them to) is killed."""
    statuses: list[int] = []

    async def on_response(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/chat/completions"):
            statuses.append(response.status_code)

    http = httpx.AsyncClient(timeout=120, event_hooks={"response": [on_response]})
    client = AsyncClient(
        base_url=router, api_key=KEY, model="ssrl-smollm2-135m", max_retries=4, http_client=http
    )
    done: list[int] = []
    errors: list[str] = []

    async def trajectory(t: int, first: str) -> None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": first}]
        try:
            for k in range(2):
                result = await client.chat(messages, search_mode="off", max_tokens=max_tokens, temperature=0)
                messages += [
                    {"role": "assistant", "content": result.answer or ""},
                    {"role": "user", "content": FOLLOW_UPS[k]},
                ]
            done.append(t)
        except Exception as exc:  # reported, not raised: the summary says what failed
            errors.append(f"{t}: {type(exc).__name__}: {exc}")

    async def in_flight(replica: Server) -> float:
        text = (await http.get(replica.url + "/metrics")).text
        line = next((ln for ln in text.splitlines() if ln.startswith("ssrl_requests_in_flight ")), "x 0")
        return float(line.rsplit(" ", 1)[1])

    start = time.monotonic()
    before = served_counts(replicas)
    tasks = [asyncio.create_task(trajectory(t, f)) for t, f in enumerate(firsts)]
    # kill a replica once it is generating for some of the trajectories
    victim, killed_in_flight = len(replicas) - 1, 0.0
    while time.monotonic() - start < deadline / 2 and killed_in_flight == 0:
        for index, replica in enumerate(replicas):
            killed_in_flight = await in_flight(replica)
            if killed_in_flight > 0:
                victim = index
                break
        else:
            await asyncio.sleep(0.05)
    statuses_at_kill = len(statuses)
    served_at_kill = served_counts(replicas)
    await asyncio.to_thread(kill_victim, replicas[victim])
    killed_at = time.monotonic() - start
    _, pending = await asyncio.wait(tasks, timeout=max(deadline - (time.monotonic() - start), 1))
    for task in pending:
        task.cancel()
    elapsed = time.monotonic() - start
    survivors = [i for i in range(len(replicas)) if i != victim]
    after = served_counts([replicas[i] for i in survivors])
    survivor_served = sum(a - served_at_kill[i] for a, i in zip(after, survivors, strict=True))
    await client.close()
    await http.aclose()
    return {
        "trajectories": len(firsts),
        "completed": len(done),
        "hung": len(pending),
        "errors": errors,
        "victim": victim + 1,
        "victim_in_flight_when_killed": int(killed_in_flight),
        "victim_served_before_kill": int(served_at_kill[victim] - before[victim]),
        "killed_after_s": round(killed_at, 2),
        "elapsed_s": round(elapsed, 2),
        "responses_5xx_seen_by_sdk": sum(s >= 500 for s in statuses),
        "responses_5xx_after_kill": sum(s >= 500 for s in statuses[statuses_at_kill:]),
        "statuses_5xx": sorted({s for s in statuses if s >= 500}),
        "responses_200": sum(s == 200 for s in statuses),
        "responses_200_after_kill": sum(s == 200 for s in statuses[statuses_at_kill:]),
        "survivor_served_after_kill": int(survivor_served),
    }


def run(trajectories: int, turns: int, max_tokens: int, log_dir: Path) -> dict[str, Any]:
    replicas = start_replicas(log_dir, 2)
    try:
        workers = [r.url for r in replicas]
        results: dict[str, Any] = {}
        for offset, policy in enumerate(("consistent_hash", "round_robin")):
            with start_router(policy, workers, log_dir) as router:
                firsts = openings(trajectories, offset * trajectories)
                turns_run = run_sequential(router.url, replicas, firsts, turns, max_tokens)
                results[policy] = {**summarise(turns_run), "turns": [asdict(t) for t in turns_run]}
        with start_router("consistent_hash", workers, log_dir, retries=False) as router:
            firsts = openings(max(trajectories // 2, 4), 2 * trajectories)
            results["failover"] = asyncio.run(
                failover(router.url, replicas, firsts, max_tokens=max_tokens * 3, deadline=240)
            )
        return results
    finally:
        for replica in replicas:
            replica.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trajectories", type=int, default=20)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "router.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.trajectories, args.turns, args.max_tokens, Path(tmp))
    rows = [
        [
            policy,
            r["trajectories"],
            r["requests"],
            r["on_one_replica"],
            "/".join(map(str, r["requests_per_replica"])),
            r["continuation_cached_share"],
        ]
        for policy, r in results.items()
        if policy != "failover"
    ]
    print(
        table(["policy", "trajectories", "requests", "on one replica", "per replica", "cached share"], rows)
    )
    f = results["failover"]
    print(
        table(
            [
                "trajectories",
                "completed",
                "hung",
                "in flight on victim",
                "5xx seen (retried)",
                "survivor served",
            ],
            [
                [
                    f["trajectories"],
                    f["completed"],
                    f["hung"],
                    f["victim_in_flight_when_killed"],
                    f["responses_5xx_seen_by_sdk"],
                    f["survivor_served_after_kill"],
                ]
            ],
        )
    )
    command = " ".join(["python -m bench.router", *(argv if argv is not None else sys.argv[1:])])
    write_json(args.out, {"command": command.strip(), **results})


if __name__ == "__main__":
    main()
