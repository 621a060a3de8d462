"""The agent loop served three ways, with and without speculative decoding: the same questions, model
and index, each system on a fresh server, at several concurrency levels, repeated to show the spread.

    .venv/bin/python -m bench.client_mode [--levels 1 4 16 64] [--questions 64] [--serial-questions 16]
        [--repeat 2] [--systems vllm_loop vllm_loop_ngram real_off real client] [--max-tokens 1024]

Systems (``--systems``; the default runs the first five):
- ``vllm_loop``: what users build today, a client-side loop over vLLM's own OpenAI server (defaults),
  ``/v1/completions`` with ``stop=["</search>", "</answer>"]``, re-sending prompt + text each turn and
  rendering the results itself (with this service's observation format: the model sees the same text);
- ``vllm_loop_ngram``: the same loop over vLLM's server started with the service's ngram speculation;
- ``real_off``: this service runs the loop and the search, ``--engine.speculation off``;
- ``real``: the same with the service's defaults (``engine.speculation=auto``: for agent traffic
  suffix decoding where arctic-inference is installed, as ``scripts/setup.sh`` does where it finds a
  C++ compiler, else ngram up to 16 sequences a step);
- ``client``: the service's defaults, the caller runs each search (tool calls, the SDK's ``search=``);
- optional: ``real_ngram_cap16`` (``--engine.speculation-max-batch 16``), ``real_ngram8`` (eight
  draft tokens a step instead of four), ``real_suffix`` (vLLM's
  suffix decoding; needs arctic-inference) and ``vllm_loop_suffix`` (the loop over vLLM's server
  with the same), ``real_iomp`` (the defaults with
  ``--engine.intel-openmp auto``: Intel OpenMP in the speculating engine, as vLLM's CPU docs ask),
  ``vllm_loop_ngram_iomp`` (``vllm_loop_ngram`` with Intel OpenMP in its server's ``LD_PRELOAD``),
  ``real_norep`` (the defaults without the service's repetition stop, which vLLM's server lacks).

All search the same index the same way: the embedded Wikipedia summaries behind ``ssrl-retriever`` on
loopback, called by the service's ``retriever`` backend (its cache off) or by the client. Greedy.
Every level asks its own questions (``--serial-questions`` below concurrency 16, ``--questions`` from
16 on), after one warm-up question of its own, so no server sees a question twice (the prefix cache
would answer it); every repeat starts every server anew, in reverse order on odd repeats. Each row
records the load average at its start and end. Results: JSON (``--out``) and a markdown report beside
it (bench/client_mode_report.py: per-run rows, means, ratios, run-to-run spread, the issue's criteria).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench._util import Server, percentile, retriever_server, ssrl_server, write_json, write_results
from bench.client_mode_report import report
from bench.overhead import vllm_server
from evals.scoring import exact_match
from service.agent.prompts import PRESETS, SEARCH_R1_INSTRUCTION, agent_messages, clean_results
from service.agent.tags import ANSWER_CLOSE, SEARCH_CLOSE, last_answer, search_action
from service.engine.model_files import prepare_embedded_model
from service.engine.settings import EngineSettings
from service.engine.vllm import speculative_config
from service.search.base import Doc
from service.search.retriever import parse_hit
from service.settings import EMBEDDED_MODEL_NAME, Settings
from ssrl_client import AsyncClient

MODEL = EMBEDDED_MODEL_NAME
OBSERVATION = PRESETS["ssrl-smollm2"]
TOP_K = 3
RESULT_WORDS = Settings().agent.result_words
MAX_TURNS = Settings().agent.max_turns
#: The service's ngram speculation, as vLLM's --speculative-config (the same config both ways).
NGRAM = speculative_config(EngineSettings(speculation="ngram"), agent_traffic=True)
SPEC_COUNTERS = ("vllm:spec_decode_num_draft_tokens", "vllm:spec_decode_num_accepted_tokens")
#: Where an engine's work goes: prompt tokens (those the prefix cache held among them) and generated tokens.
TOKEN_COUNTERS = ("vllm:prompt_tokens", "vllm:prompt_tokens_cached", "vllm:generation_tokens")


@dataclass(frozen=True)
class System:
    label: str
    server: str  # "vllm" or "service"
    mode: str = "real"  # service: real or client
    args: tuple[str, ...] = ()
    speculative_config: dict[str, Any] | None = None  # vllm
    env: dict[str, str] = field(default_factory=dict)


def iomp_env() -> dict[str, str]:
    library = Path(sys.prefix) / "lib" / "libiomp5.so"
    if not library.is_file():
        raise SystemExit(f"vllm_loop_ngram_iomp: no {library} (pip install intel-openmp)")
    return {"LD_PRELOAD": str(library)}


SYSTEMS: dict[str, Callable[[], System]] = {
    "vllm_loop": lambda: System("client-side loop over vLLM's server (defaults)", "vllm"),
    "vllm_loop_ngram": lambda: System(
        "client-side loop over vLLM's server, ngram speculation", "vllm", speculative_config=NGRAM
    ),
    "real_off": lambda: System(
        "service `real`, --engine.speculation off", "service", args=("--engine.speculation", "off")
    ),
    "real": lambda: System("service `real` (defaults)", "service"),
    "client": lambda: System("service `client` (defaults)", "service", mode="client"),
    "real_ngram_cap16": lambda: System(
        "service `real`, ngram, --engine.speculation-max-batch 16",
        "service",
        args=("--engine.speculation", "ngram", "--engine.speculation-max-batch", "16"),
    ),
    "real_ngram8": lambda: System(
        "service `real`, ngram, --engine.speculative-tokens 8",
        "service",
        args=("--engine.speculation", "ngram", "--engine.speculative-tokens", "8"),
    ),
    "vllm_loop_suffix": lambda: System(
        "client-side loop over vLLM's server, suffix decoding",
        "vllm",
        # the service's suffix decoding as vLLM's --speculative-config; raises without arctic-inference
        speculative_config=speculative_config(EngineSettings(speculation="suffix"), agent_traffic=True),
    ),
    "real_suffix": lambda: System(
        "service `real`, --engine.speculation suffix", "service", args=("--engine.speculation", "suffix")
    ),
    "real_norep": lambda: System(
        "service `real`, --repetition.max-pattern-size 0 (no repetition stop)",
        "service",
        args=("--repetition.max-pattern-size", "0"),
    ),
    "vllm_loop_ngram_iomp": lambda: System(
        "client-side loop over vLLM's server, ngram speculation, libiomp5 preloaded (as vLLM asks)",
        "vllm",
        speculative_config=NGRAM,
        env=iomp_env(),
    ),
    "real_iomp": lambda: System(
        "service `real`, --engine.intel-openmp auto (Intel OpenMP in the speculating engine)",
        "service",
        args=("--engine.intel-openmp", "auto"),
    ),
}
DEFAULT_SYSTEMS = ["vllm_loop", "vllm_loop_ngram", "real_off", "real", "client"]


@dataclass
class Outcome:
    latency: float
    answer: str | None
    searches: int
    trajectory: str | None = None


Ask = Callable[[str], Awaitable[Outcome]]


def load_questions(path: Path, limit: int | None = None) -> list[tuple[str, list[str]]]:
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
        params: dict[str, Any] = {"max_tokens": max_tokens, "top_k": TOP_K, "temperature": 0}
        if mode == "client":
            result = await client.ask(question, search=search, **params)
        else:
            result = await client.ask(question, search_mode=mode, **params)
        return Outcome(time.perf_counter() - started, result.answer, len(result.steps), result.trajectory)

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
        return Outcome(time.perf_counter() - started, last_answer(text), searches, text)

    return ask


async def engine_counters(
    http: httpx.AsyncClient, url: str, names: tuple[str, ...] = SPEC_COUNTERS
) -> dict[str, float]:
    """vLLM's counters on the service's /metrics: by default those of speculative decoding (zeros when
    it does not speculate). vLLM's own server runs here with ``--disable-log-stats``, so it has none."""
    text = (await http.get(f"{url}/metrics")).text
    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        if family.name in totals:
            totals[family.name] = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return totals


async def run_level(
    ask: Ask,
    questions: list[tuple[str, list[str]]],
    warmup: str,
    concurrency: int,
    http: httpx.AsyncClient,
    metrics_url: str | None = None,
) -> dict[str, Any]:
    """One level on one server; with ``metrics_url`` (the service), the engine's speculation and token
    counters over the level's questions."""
    limit = asyncio.Semaphore(concurrency)

    async def one(question: str) -> Outcome:
        async with limit:
            return await ask(question)

    await ask(warmup)  # not counted, and never asked again
    counters = SPEC_COUNTERS + TOKEN_COUNTERS
    before = await engine_counters(http, metrics_url, counters) if metrics_url else None
    load_start = os.getloadavg()
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(q) for q, _ in questions))
    elapsed = time.perf_counter() - started
    load_end = os.getloadavg()
    latencies = [o.latency for o in outcomes]
    row: dict[str, Any] = {
        "questions": len(questions),
        "elapsed_s": elapsed,
        "questions_per_s": len(questions) / elapsed,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "answered": sum(o.answer is not None for o in outcomes) / len(outcomes),
        "em": sum(
            exact_match(o.answer or "", golds) for o, (_, golds) in zip(outcomes, questions, strict=True)
        )
        / len(outcomes),
        "searches_per_q": sum(o.searches for o in outcomes) / len(outcomes),
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "answers": [o.answer for o in outcomes],
    }
    if before is not None and metrics_url:
        after = await engine_counters(http, metrics_url, counters)
        drafted, accepted, prompt, cached, generated = (after[name] - before[name] for name in counters)
        row |= {"draft_tokens": drafted, "accepted_tokens": accepted}
        row |= {"prompt_tokens": prompt, "prompt_tokens_cached": cached, "generation_tokens": generated}
    return row


def plan(
    pool: list[tuple[str, list[str]]], levels: list[int], questions: int, serial: int
) -> dict[int, tuple[str, list[tuple[str, list[str]]]]]:
    """Each level's warm-up question and its own questions, disjoint from every other level's."""
    out: dict[int, tuple[str, list[tuple[str, list[str]]]]] = {}
    at = 0
    for level in levels:
        size = questions if level >= 16 else serial
        if at + 1 + size > len(pool):
            raise SystemExit(f"the dataset has {len(pool)} questions; the levels need more")
        out[level] = (pool[at][0], pool[at + 1 : at + 1 + size])
        at += 1 + size
    return out


@contextlib.contextmanager
def serve(system: System, log_dir: Path, retriever: str, model_dir: Path) -> Iterator[Server]:
    if system.server == "vllm":
        with vllm_server(
            model_dir, log_dir, speculative_config=system.speculative_config, env=system.env
        ) as server:
            yield server
        return
    with service_server(log_dir, retriever, *system.args, env=system.env) as server:
        yield server


def service_server(
    log_dir: Path, retriever: str, *args: str, kv_cache_gib: float = 1, env: dict[str, str] | None = None
) -> Server:
    """This service as the benchmarks run it: real mode by default, the local index at ``retriever``,
    the search cache off, no concurrency limit in the way; ``args`` are further flags."""
    engine = ["--engine.max-model-len", "2048", "--engine.kv-cache-gib", f"{kv_cache_gib:g}"]
    search = ["--search.backend", "retriever", "--search.retriever.base-url", retriever]
    return ssrl_server(
        log_dir,
        *engine,
        "--max-concurrency",
        "1000",
        *search,
        "--search.cache-size",
        "0",
        "--search-mode",
        "real",
        *args,
        env=env,
    )


def measure(
    system: System,
    server: Server,
    retriever: str,
    levels: dict[int, tuple[str, list[tuple[str, list[str]]]]],
    tokenizer: Any,
    max_tokens: int,
) -> dict[int, dict[str, Any]]:
    """Every level in turn on one server, in one event loop, with one HTTP client."""

    async def go() -> dict[int, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=900, limits=httpx.Limits(max_connections=128)) as http:
            if system.server == "vllm":
                ask = vllm_loop_asker(server.url, retriever, http, tokenizer, max_tokens)
                metrics = None  # started with --disable-log-stats (bench.overhead.vllm_server)
            else:
                client = AsyncClient(
                    base_url=server.url, model=MODEL, max_retries=0, timeout=900, http_client=http
                )
                ask = service_asker(client, system.mode, retriever, http, max_tokens)
                metrics = server.url
            return {
                c: await run_level(ask, qs, warmup, c, http, metrics) for c, (warmup, qs) in levels.items()
            }

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--questions", type=int, default=64, help="questions per level from concurrency 16 on"
    )
    parser.add_argument("--serial-questions", type=int, default=16, help="questions per level below 16")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--repeat", type=int, default=2, help="runs of every system, for the spread")
    parser.add_argument("--systems", nargs="+", default=DEFAULT_SYSTEMS, choices=sorted(SYSTEMS))
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--dataset", type=Path, default=Path("bench/data/ssrl-test.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/client_mode.json"))
    args = parser.parse_args()
    systems = {name: SYSTEMS[name]() for name in args.systems}
    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    levels = plan(load_questions(args.dataset), args.levels, args.questions, args.serial_questions)
    # A SIGTERM (a timeout) unwinds the with-blocks, so the servers started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    model_dir = prepare_embedded_model(Settings().cache_dir)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    payload: dict[str, Any] = {
        "benchmark": "client_mode",
        "args": {k: str(v) for k, v in vars(args).items()},
        "systems": {name: system.label for name, system in systems.items()},
        "levels": {c: {"questions": len(qs), "warmup": w} for c, (w, qs) in levels.items()},
        "loadavg_start": os.getloadavg(),
        "rows": [],
    }
    started = time.monotonic()
    with retriever_server(log_dir) as retriever:
        for repeat in range(args.repeat):
            order = list(systems) if repeat % 2 == 0 else list(reversed(systems))
            for name in order:
                with serve(systems[name], log_dir, retriever.url, Path(model_dir)) as server:
                    results = measure(
                        systems[name], server, retriever.url, levels, tokenizer, args.max_tokens
                    )
                for level, row in results.items():
                    payload["rows"].append(
                        {"system": name, "repeat": repeat + 1, "concurrency": level, **row}
                    )
                    print(
                        f"run {repeat + 1} {name} c={level}: {row['questions_per_s']:.3f} q/s, "
                        f"p50 {row['p50_s']:.2f} s, EM {row['em']:.2f}, load {row['loadavg_start'][0]:.1f}"
                        f" -> {row['loadavg_end'][0]:.1f}",
                        flush=True,
                    )
                write_json(args.out.with_suffix(".partial.json"), payload)
    payload |= {"loadavg_end": os.getloadavg(), "wall_s": time.monotonic() - started}
    write_results(args.out, payload, report(payload))


if __name__ == "__main__":
    main()
