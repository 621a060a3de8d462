"""Bring your own search, measured: the same questions, model and index, answered three ways.

    .venv/bin/python -m bench.client_mode [--questions 30] [--levels 1 16] [--max-tokens 1024]

- ``real``: this service runs the loop and the search (server side);
- ``client``: this service stops at each search with a tool call; the client runs the search and
  sends the results back (the SDK's ``search=``), one request per search;
- baseline, what users build today: a client-side loop over vLLM's own OpenAI server,
  ``/v1/completions`` with ``stop=["</search>", "</answer>"]``, re-sending prompt + text each turn
  and rendering the results itself (with this service's observation format, so the model sees the
  same trajectory).

All three search the same index the same way: the embedded Wikipedia summaries behind
``ssrl-retriever`` on loopback (HTTP), called by the service's ``retriever`` backend in ``real`` mode
and by the client in the other two; the service's search cache is off, so every search is a call.
Greedy decoding. Per system and concurrency: latency p50/p95 per question and questions/s, as
ratios to the baseline's. The servers run one after the other (never together on the CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._util import Server, free_port, percentile, ssrl_server, table, write_json
from bench.overhead import vllm_server
from evals.scoring import exact_match
from service.agent.prompts import PRESETS, SEARCH_R1_INSTRUCTION, agent_messages, clean_results
from service.agent.tags import ANSWER_CLOSE, SEARCH_CLOSE, last_answer, search_action
from service.engine.model_files import prepare_embedded_model
from service.search.base import Doc
from service.search.retriever import parse_hit
from service.settings import EMBEDDED_MODEL_NAME, Settings
from ssrl_client import AsyncClient

MODEL = EMBEDDED_MODEL_NAME
OBSERVATION = PRESETS["ssrl-smollm2"]
TOP_K = 3
RESULT_WORDS = Settings().agent.result_words
MAX_TURNS = Settings().agent.max_turns


@dataclass
class Outcome:
    latency: float
    answer: str | None
    searches: int


Ask = Callable[[str], Awaitable[Outcome]]


def load_questions(path: Path, limit: int) -> list[tuple[str, list[str]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["question"], r["golden_answers"]) for r in rows[:limit]]


async def retrieve(http: httpx.AsyncClient, url: str, query: str) -> list[Doc]:
    response = await http.post(
        f"{url}/retrieve", json={"queries": [query], "topk": TOP_K, "return_scores": True}
    )
    response.raise_for_status()
    return [parse_hit(hit) for hit in response.json()["result"][0]]


def service_asker(
    client: AsyncClient, mode: str, retriever: str, http: httpx.AsyncClient, max_tokens: int
) -> Ask:
    async def search(query: str) -> list[dict[str, Any]]:
        return [
            {"title": d.title, "text": d.text, "url": d.url} for d in await retrieve(http, retriever, query)
        ]

    async def ask(question: str) -> Outcome:
        started = time.perf_counter()
        if mode == "client":
            result = await client.ask(question, search=search, max_tokens=max_tokens, top_k=TOP_K)
        else:
            result = await client.ask(question, search_mode=mode, max_tokens=max_tokens, top_k=TOP_K)
        return Outcome(time.perf_counter() - started, result.answer, len(result.steps))

    return ask


def vllm_loop_asker(
    url: str, retriever: str, http: httpx.AsyncClient, tokenizer: Any, max_tokens: int
) -> Ask:
    """The client-side loop users write over vLLM's OpenAI server."""

    async def ask(question: str) -> Outcome:
        started = time.perf_counter()
        messages = agent_messages(question, SEARCH_R1_INSTRUCTION)
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        text, used, searches = "", 0, 0
        while used < max_tokens:
            stop = [SEARCH_CLOSE, ANSWER_CLOSE] if searches < MAX_TURNS else [ANSWER_CLOSE]
            body = {
                "model": MODEL,
                "prompt": prompt + text,
                "max_tokens": max_tokens - used,
                "temperature": 0,
                "stop": stop,
                "include_stop_str_in_output": True,
            }
            response = await http.post(f"{url}/v1/completions", json=body)
            response.raise_for_status()
            choice = response.json()["choices"][0]
            segment = choice["text"]
            text += segment
            used += response.json()["usage"]["completion_tokens"]
            action = search_action(segment) if choice.get("stop_reason") == SEARCH_CLOSE else None
            if action is None:
                break
            docs = clean_results(await retrieve(http, retriever, action.query), TOP_K, RESULT_WORDS)
            observation = OBSERVATION.render(docs)
            text += observation
            used += len(tokenizer.encode(observation, add_special_tokens=False))
            searches += 1
        return Outcome(time.perf_counter() - started, last_answer(text), searches)

    return ask


async def run_level(ask: Ask, questions: list[tuple[str, list[str]]], concurrency: int) -> dict[str, Any]:
    limit = asyncio.Semaphore(concurrency)

    async def one(question: str) -> Outcome:
        async with limit:
            return await ask(question)

    await ask(questions[0][0])  # warm-up, not counted
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(q) for q, _ in questions))
    elapsed = time.perf_counter() - started
    latencies = [o.latency for o in outcomes]
    return {
        "questions": len(questions),
        "questions_per_s": len(questions) / elapsed,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "answered": sum(o.answer is not None for o in outcomes) / len(outcomes),
        "em": sum(
            exact_match(o.answer or "", golds) for o, (_, golds) in zip(outcomes, questions, strict=True)
        )
        / len(outcomes),
        "searches_per_q": sum(o.searches for o in outcomes) / len(outcomes),
        "answers": [o.answer for o in outcomes],
    }


def measure(
    make_ask: Callable[[httpx.AsyncClient], Ask],
    questions: list[tuple[str, list[str]]],
    levels: list[int],
    serial: int,
) -> dict[int, Any]:
    """Each level in turn, in one event loop, with one HTTP client for the searches (and vLLM)."""

    async def go() -> dict[int, Any]:
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=64)) as http:
            return {
                c: await run_level(make_ask(http), questions[:serial] if c == 1 else questions, c)
                for c in levels
            }

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--serial-questions", type=int, default=None, help="questions at concurrency 1")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--dataset", type=Path, default=Path("bench/data/ssrl-test.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/client_mode.json"))
    args = parser.parse_args()
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    questions = load_questions(args.dataset, args.questions)
    serial = args.serial_questions or len(questions)
    # A SIGTERM (a timeout) unwinds the with-blocks, so the servers started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model_dir = prepare_embedded_model(Settings().cache_dir)
    port = free_port()
    retriever_args = [
        sys.executable,
        "-m",
        "service.search.retriever_server",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    results: dict[str, dict[int, Any]] = {}
    with Server(retriever_args, port, log_dir / f"retriever-{port}.log") as retriever:
        engine = ["--engine.max-model-len", "2048", "--engine.kv-cache-gib", "1", "--max-concurrency", "1000"]
        search = ["--search.backend", "retriever", "--search.retriever.base-url", retriever.url]
        with ssrl_server(
            log_dir, *engine, *search, "--search.cache-size", "0", "--search-mode", "real"
        ) as server:
            for mode in ("real", "client"):

                def service_ask(http: httpx.AsyncClient, mode: str = mode, url: str = server.url) -> Ask:
                    client = AsyncClient(
                        base_url=url, model=MODEL, max_retries=0, timeout=600, http_client=http
                    )
                    return service_asker(client, mode, retriever.url, http, args.max_tokens)

                results[mode] = measure(service_ask, questions, args.levels, serial)
                write_json(args.out.with_suffix(".partial.json"), {"results": results})
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        with vllm_server(model_dir, log_dir) as server:
            results["vllm_loop"] = measure(
                lambda http: vllm_loop_asker(server.url, retriever.url, http, tokenizer, args.max_tokens),
                questions,
                args.levels,
                serial,
            )
    rows = []
    for level in args.levels:
        base = results["vllm_loop"][level]
        for name in ("vllm_loop", "real", "client"):
            r = results[name][level]
            rows.append(
                {
                    "system": name,
                    "concurrency": level,
                    **r,
                    "qps_ratio": r["questions_per_s"] / base["questions_per_s"],
                    "p50_ratio": r["p50_s"] / base["p50_s"],
                    "p95_ratio": r["p95_s"] / base["p95_s"],
                    # the same trajectories are expected (greedy, same text): the answers should agree
                    "same_answer_as_baseline": sum(
                        a == b for a, b in zip(r["answers"], base["answers"], strict=True)
                    )
                    / len(r["answers"]),
                }
            )
    print(
        f"\n{len(questions)} questions of {args.dataset} ({serial} at concurrency 1), greedy, "
        f"max_tokens {args.max_tokens}"
    )
    print(
        table(
            [
                "system",
                "concurrency",
                "q/s",
                "q/s ratio",
                "p50 s",
                "p50 ratio",
                "p95 s",
                "p95 ratio",
                "answered",
                "EM",
                "searches/q",
                "same answer as baseline",
            ],
            [
                [
                    r["system"],
                    r["concurrency"],
                    r["questions_per_s"],
                    r["qps_ratio"],
                    r["p50_s"],
                    r["p50_ratio"],
                    r["p95_s"],
                    r["p95_ratio"],
                    r["answered"],
                    r["em"],
                    r["searches_per_q"],
                    r["same_answer_as_baseline"],
                ]
                for r in rows
            ],
        )
    )
    write_json(
        args.out,
        {"benchmark": "client_mode", "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
    )


if __name__ == "__main__":
    main()
