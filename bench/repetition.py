"""What the repetition stop costs: one server of this service (the defaults, real mode, greedy), the
same questions under several repetition-stop settings sent per request (vLLM's request field
``repetition_detection``), interleaved so that the machine's drift and the prefix cache fall on every
setting alike; and whether each setting still ends a runaway.

    .venv/bin/python -m bench.repetition [--settings default default 16 8 off] [--levels 1 16]
        [--serial-block 4] [--block 16] [--serial-squares 2] [--squares 1] [--kv-cache-gib 4]
        [--max-tokens 1024]
        [--out bench/results/repetition.json]

``default`` sends no field (the server's ``--repetition.*``: patterns of 3 to 32 tokens, 8 repeats);
a number N sends ``max_pattern_size`` N with the server's other two values; ``off`` sends
``max_pattern_size`` 0. Naming ``default`` twice is the control: its second copy is timed like any
other setting, so its ratio to the first is the noise to read the others against.

Design: at each level the questions are cut into as many blocks as there are settings, and each
square asks every block once under every setting (a Latin square: round r gives setting i block
(i + r) mod n, in an order rotated by r). So every setting answers the very same questions, once
first and otherwise after another setting asked them (the prefix cache then holds the prompt), and
its figure is its questions over its summed time. Concurrency 1 asks a block one question after
another; a higher level asks it all at once, at most that many in flight. The KV cache is sized to
hold every block's prompts (``--kv-cache-gib``, 4 by default), so from the second round on every ask
finds its prompt cached: with 1 GiB, 16 questions' trajectories (injected results included) fill it
after three blocks, a re-ask of an evicted block took twice as long as one of a held block, and which
blocks were evicted depended on the round's order, not on the setting.

The runaway check asks "hi" in real mode with no ``max_tokens`` and a trajectory prefilled with a
loop ("I am not sure about the occupation of the occupation of ...", as the first adapter wrote),
under each setting: the tokens it took and how it ended.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench._util import retriever_server, table, write_json, write_results
from bench.client_mode import MODEL, TOKEN_COUNTERS, TOP_K, engine_counters, load_questions, service_server
from evals.scoring import exact_match
from service.settings import Settings

LOOP_PREFILL = "<think> I am not sure about" + " the occupation of" * 8


def rule(setting: str) -> dict[str, int] | None:
    """The request's ``repetition_detection`` for a setting; None: the server's own."""
    if setting == "default":
        return None
    if setting == "off":
        return {"max_pattern_size": 0}
    server = Settings().repetition
    size = int(setting)
    if size < server.min_pattern_size:
        raise ValueError(
            f"max_pattern_size {size} is below the server's min_pattern_size {server.min_pattern_size}"
        )
    return {
        "max_pattern_size": size,
        "min_pattern_size": server.min_pattern_size,
        "min_count": server.min_count,
    }


def latin_square(settings: list[str], blocks: int) -> list[list[tuple[str, int, int]]]:
    """Rounds of (setting name, its index, block): round r gives setting i block (i + r) mod n, and
    runs the settings in an order rotated by r."""
    n = len(settings)
    if blocks != n:
        raise ValueError("a Latin square needs as many blocks as settings")
    rounds = []
    for r in range(n):
        order = [(i + r) % n for i in range(n)]
        rounds.append([(settings[i], i, (i + r) % n) for i in order])
    return rounds


def cut(questions: list[tuple[str, list[str]]], blocks: int, size: int) -> list[list[tuple[str, list[str]]]]:
    if len(questions) < blocks * size:
        raise SystemExit(f"the dataset has {len(questions)} questions; {blocks} blocks of {size} need more")
    return [questions[b * size : (b + 1) * size] for b in range(blocks)]


def body(question: str, setting: str, max_tokens: int | None, prefill: str | None = None) -> dict[str, Any]:
    messages: list[dict[str, str]] = [{"role": "user", "content": question}]
    if prefill is not None:
        messages.append({"role": "assistant", "content": prefill})
    out: dict[str, Any] = {
        "model": MODEL,
        "messages": messages,
        "search_mode": "real",
        "temperature": 0,
        "search": {"top_k": TOP_K},
    }
    if max_tokens is not None:
        out["max_tokens"] = max_tokens
    if (asked := rule(setting)) is not None:
        out["repetition_detection"] = asked
    return out


async def ask(http: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(f"{url}/v1/chat/completions", json=payload)
    response.raise_for_status()
    data = response.json()
    trace = data.get("search_trace") or {}
    message = data["choices"][0]["message"]
    return {
        "answer": message.get("content"),  # the answer; the trajectory is reasoning_content
        "end_reason": trace.get("end_reason"),
        "completion_tokens": data["usage"]["completion_tokens"],
        "trajectory": message.get("reasoning_content") or message.get("content") or "",
    }


async def run_cell(
    http: httpx.AsyncClient,
    url: str,
    block: list[tuple[str, list[str]]],
    setting: str,
    concurrency: int,
    max_tokens: int,
) -> dict[str, Any]:
    limit = asyncio.Semaphore(concurrency)

    async def one(question: str) -> dict[str, Any]:
        async with limit:
            return await ask(http, url, body(question, setting, max_tokens))

    before = await engine_counters(http, url, TOKEN_COUNTERS)
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(q) for q, _ in block))
    elapsed = time.perf_counter() - started
    after = await engine_counters(http, url, TOKEN_COUNTERS)
    prompt, cached, generated = (after[name] - before[name] for name in TOKEN_COUNTERS)
    return {
        "prompt_tokens": prompt,
        "prompt_tokens_cached": cached,
        "generation_tokens": generated,
        "elapsed_s": elapsed,
        "questions": [q for q, _ in block],
        "answers": [o["answer"] for o in outcomes],
        "em": [exact_match(o["answer"] or "", golds) for o, (_, golds) in zip(outcomes, block, strict=True)],
        "completion_tokens": sum(o["completion_tokens"] for o in outcomes),
        "end_reasons": [o["end_reason"] for o in outcomes],
    }


def summarise(cells: list[dict[str, Any]], settings: list[str]) -> list[dict[str, Any]]:
    """Per level and setting: questions over summed time, its ratio to the first setting, EM, tokens,
    and how many answers equal the first setting's to the same question."""
    out = []
    for level in sorted({c["concurrency"] for c in cells}):
        at = [c for c in cells if c["concurrency"] == level]
        answers = {
            i: {
                q: a for c in at if c["index"] == i for q, a in zip(c["questions"], c["answers"], strict=True)
            }
            for i in range(len(settings))
        }
        base_rate = None
        for i, name in enumerate(settings):
            mine = [c for c in at if c["index"] == i]
            asked = sum(len(c["questions"]) for c in mine)
            rate = asked / sum(c["elapsed_s"] for c in mine)
            base_rate = rate if base_rate is None else base_rate
            same = sum(answers[i][q] == answers[0].get(q) for q in answers[i])
            out.append(
                {
                    "concurrency": level,
                    "setting": name,
                    "copy": settings[:i].count(name) + 1,
                    "questions": asked,
                    "questions_per_s": rate,
                    "ratio": rate / base_rate,
                    "em": sum(sum(c["em"]) for c in mine) / asked,
                    "answered": sum(a is not None for c in mine for a in c["answers"]),
                    "tokens_per_q": sum(c["completion_tokens"] for c in mine) / asked,
                    # prompt tokens the engine computed (not found in its prefix cache), per question
                    "prefilled_per_q": sum(c["prompt_tokens"] - c["prompt_tokens_cached"] for c in mine)
                    / asked,
                    "same_answers": same,
                    "repetition_stops": sum(r == "repetition" for c in mine for r in c["end_reasons"]),
                }
            )
    return out


def report(payload: dict[str, Any]) -> str:
    rows = [
        [
            r["concurrency"],
            r["setting"] + (f" (copy {r['copy']})" if r["copy"] > 1 else ""),
            r["questions"],
            r["questions_per_s"],
            f"{r['ratio']:.3f}x",
            f"{100 * r['em']:.1f}",
            r["answered"],
            f"{r['tokens_per_q']:.0f}",
            f"{r['prefilled_per_q']:.0f}",
            f"{r['same_answers']} of {r['questions']}",
            r["repetition_stops"],
        ]
        for r in payload["summary"]
    ]
    lines = [
        table(
            [
                "c",
                "setting",
                "questions",
                "q/s",
                "ratio to the first",
                "EM",
                "answered",
                "generated/q",
                "prefilled/q",
                "same answers",
                "stopped",
            ],
            rows,
        )
    ]
    runaway = [
        [r["setting"], r["case"], r["completion_tokens"], r["end_reason"], f"{r['elapsed_s']:.1f}"]
        for r in payload["runaway"]
    ]
    lines += ["", table(["setting", "request", "completion tokens", "end reason", "s"], runaway)]
    start, end = payload["loadavg_start"][0], payload["loadavg_end"][0]
    lines += [
        "",
        f"load average {start:.2f} at the start, {end:.2f} at the end; {payload['wall_s'] / 60:.1f} minutes.",
    ]
    return "\n".join(lines)


async def runaway_check(http: httpx.AsyncClient, url: str, settings: list[str]) -> list[dict[str, Any]]:
    out = []
    for setting in dict.fromkeys(settings):
        for case, payload in (
            ("hi", body("hi", setting, None)),
            ("prefilled loop", body("hi", setting, None, prefill=LOOP_PREFILL)),
        ):
            started = time.perf_counter()
            result = await ask(http, url, payload)
            out.append(
                {
                    "setting": setting,
                    "case": case,
                    "elapsed_s": time.perf_counter() - started,
                    "completion_tokens": result["completion_tokens"],
                    "end_reason": result["end_reason"],
                    "tail": result["trajectory"][-120:],
                }
            )
            print(
                f"runaway {setting} {case}: {out[-1]['completion_tokens']} tokens, {out[-1]['end_reason']}",
                flush=True,
            )
    return out


async def measure(url: str, args: argparse.Namespace, pool: list[Any], payload: dict[str, Any]) -> None:
    """The runaway check, then every level's Latin squares, on one server; all lands in ``payload``."""
    n = len(args.settings)
    async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=128)) as http:
        payload["runaway"] = await runaway_check(http, url, args.settings)
        await ask(http, url, body(pool[0][0], "default", args.max_tokens))  # warm-up, never asked again
        at = 1
        for level in args.levels:
            size = args.serial_block if level == 1 else args.block
            for square in range(args.serial_squares if level == 1 else args.squares):
                blocks = cut(pool[at:], n, size)
                at += n * size
                for r, cells in enumerate(latin_square(args.settings, n)):
                    for name, index, b in cells:
                        cell = await run_cell(http, url, blocks[b], name, level, args.max_tokens)
                        cell |= {"concurrency": level, "square": square, "round": r}
                        cell |= {"setting": name, "index": index, "block": b}
                        payload["cells"].append(cell)
                        rate = len(blocks[b]) / cell["elapsed_s"]
                        print(
                            f"c={level} square {square} round {r} {name}#{index} block {b}: "
                            f"{rate:.3f} q/s, load {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
                    write_json(args.out.with_suffix(".partial.json"), payload)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settings", nargs="+", default=["default", "default", "16", "8", "off"])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--serial-block", type=int, default=4, help="questions per block at concurrency 1")
    parser.add_argument("--block", type=int, default=16, help="questions per block above concurrency 1")
    parser.add_argument("--serial-squares", type=int, default=2, help="Latin squares at concurrency 1")
    parser.add_argument("--squares", type=int, default=1, help="Latin squares per level above 1")
    parser.add_argument("--kv-cache-gib", type=float, default=4.0, help="the server's KV cache")
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--dataset", type=Path, default=Path("bench/data/ssrl-test.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/repetition.json"))
    args = parser.parse_args()
    for setting in args.settings:
        rule(setting)  # a bad setting fails before any server starts
    pool = load_questions(args.dataset)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds the servers' with-blocks
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "benchmark": "repetition",
        "args": {k: str(v) for k, v in vars(args).items()},
        "loadavg_start": os.getloadavg(),
        "cells": [],
    }
    started = time.monotonic()
    with (
        retriever_server(log_dir) as retriever,
        service_server(log_dir, retriever.url, kv_cache_gib=args.kv_cache_gib) as server,
    ):
        asyncio.run(measure(server.url, args, pool, payload))
    payload |= {"loadavg_end": os.getloadavg(), "wall_s": time.monotonic() - started}
    payload["summary"] = summarise(payload["cells"], args.settings)
    write_results(args.out, payload, report(payload))


if __name__ == "__main__":
    main()
