"""Running a QA set through the service: concurrency, resumable results, one line per question and mode."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from evals.datasets import QAItem
from evals.scoring import contains_answer, exact_match, f1_score, gold_position
from ssrl_client import AsyncClient, ChatResult, SSRLError

logger = logging.getLogger(__name__)


def done_keys(path: Path) -> set[tuple[str, str]]:
    """(id, mode) pairs already in a results file; a torn last line is ignored."""
    keys: set[tuple[str, str]] = set()
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                if row.get("error") is None:
                    keys.add((row["id"], row["mode"]))
            except (ValueError, KeyError):
                continue
    return keys


def read_results(path: Path) -> list[dict[str, Any]]:
    """The last result of each (id, mode) in a results file."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                rows[(row["id"], row["mode"])] = row
            except (ValueError, KeyError):
                continue
    return list(rows.values())


async def send(
    client: AsyncClient, item: QAItem, mode: str, options: dict[str, Any], force_search: bool = False
) -> ChatResult:
    """Ask one question in one mode; ``options`` are the search options (backend, top_k) and OpenAI
    fields (max_tokens, n, temperature...). ``force_search`` starts the trajectory with a search for
    the question itself (a prefill), for models that do not write the tags on their own."""
    if force_search and mode != "off":
        options = dict(options)
        names = ("backend", "top_k", "max_turns", "threshold")
        search: dict[str, Any] = {k: options.pop(k) for k in names if k in options}
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": item.question},
            {"role": "assistant", "content": f"<search> {item.question} </search>"},
        ]
        return await client.chat(messages, search_mode=mode, search=search, **options)
    return await client.ask(item.question, search_mode=mode, **options)


async def ask_one(
    client: AsyncClient, item: QAItem, mode: str, options: dict[str, Any], force_search: bool = False
) -> dict[str, Any]:
    """One question in one mode (see ``send``), scored."""
    started = time.perf_counter()
    row: dict[str, Any] = {
        "id": item.id,
        "mode": mode,
        "question": item.question,
        "golden": list(item.golden_answers),
    }
    try:
        result = await send(client, item, mode, options, force_search)
    except SSRLError as exc:
        return {**row, "error": f"{type(exc).__name__}: {exc}", "latency_s": time.perf_counter() - started}
    answer = result.answer if mode != "off" else (result.answer or "").strip()
    steps = result.steps
    trace = result.trace
    golds = item.golden_answers
    # The paper's sim-to-real question, per search: does the <information> hold a gold answer,
    # when the model wrote it and when the search engine did?
    information = [
        {
            "source": s.source,
            "has_gold": contains_answer(
                " ".join(d.text for d in s.results) if s.source == "real" else s.self_information or "", golds
            ),
            # Which result, and which sentence of it, first holds a gold answer (real results only).
            **({"gold_at": gold_position([d.text for d in s.results], golds)} if s.source == "real" else {}),
        }
        for s in steps
    ]
    return {
        **row,
        "answer": answer,
        "em": exact_match(answer, item.golden_answers),
        "f1": f1_score(answer, item.golden_answers),
        "answered": answer is not None and answer != "",
        # Ended with an <answer> without needing the correction (plain chat counts as well-formed).
        "well_formed": mode == "off"
        or (trace is not None and trace.end_reason == "answer" and trace.corrections == 0),
        "information": information,
        "queries": [s.query for s in steps],
        "real_calls": sum(1 for s in steps if s.source == "real"),
        "searches": len(steps),
        "tokens": result.usage.total_tokens if result.usage else 0,
        "finish_reason": result.finish_reason,
        "end_reason": trace.end_reason if trace else None,
        "latency_s": round(time.perf_counter() - started, 4),
        "error": None,
    }


async def run_eval(
    client: AsyncClient,
    items: Sequence[QAItem],
    modes: Sequence[str],
    results: Path,
    *,
    concurrency: int,
    options: dict[str, Any],
    progress: bool = True,
    force_search: bool = False,
) -> int:
    """Ask every (question, mode) not yet in ``results``; append each answer as it comes."""
    done = done_keys(results)
    todo = [(item, mode) for mode in modes for item in items if (item.id, mode) not in done]
    logger.info("%d to ask, %d already in %s", len(todo), len(done), results)

    async def ask(item: QAItem, mode: str) -> dict[str, Any]:
        return await ask_one(client, item, mode, options, force_search)

    return await append_rows(todo, ask, results, concurrency=concurrency, progress=progress)


async def append_rows(
    todo: Sequence[tuple[QAItem, str]],
    row_of: Callable[[QAItem, str], Awaitable[dict[str, Any]]],
    results: Path,
    *,
    concurrency: int,
    progress: bool,
    desc: str | None = None,
) -> int:
    """``row_of`` every (question, mode) of ``todo``, ``concurrency`` at a time, each row appended to
    ``results`` as one whole JSON line as soon as it comes (so a run stopped midway resumes)."""
    results.parent.mkdir(parents=True, exist_ok=True)
    limit = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(todo), disable=not progress, unit="q", desc=desc)

    async def one(item: QAItem, mode: str) -> None:
        async with limit:
            row = await row_of(item, mode)
        with results.open("a", encoding="utf-8") as handle:  # one whole line per write
            handle.write(json.dumps(row) + "\n")
        bar.update(1)

    try:
        await asyncio.gather(*(one(item, mode) for item, mode in todo))
    finally:
        bar.close()
    return len(todo)
