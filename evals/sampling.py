"""K sampled trajectories per question through the service, one request with ``n`` = K each: the
pass@k / maj@k run of ``ssrl-eval --samples K`` (``run_samples``, resumable), and
``sample_trajectories`` for Python callers (rejection sampling of training data), which returns each
trajectory's text, answer and search steps with the spans of the text the service injected."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from tqdm.auto import tqdm

from evals.datasets import QAItem
from evals.runner import append_rows, send
from evals.scoring import exact_match, f1_score, normalize_answer
from service.agent.tags import CORRECTION
from ssrl_client import AsyncClient, BadRequestError, ChatResult, SearchStep, SSRLError

logger = logging.getLogger(__name__)

Span = tuple[int, int]


@dataclass(frozen=True)
class Sampling:
    """How the K trajectories of a question are sampled. With a ``seed``, the request of each
    question is seeded with a number derived from it and the question's id (the server derives each
    choice's seed from that), so a seeded run asks the same thing again; the bits of the output can
    still change with the engine's batch (vLLM's numerics depend on what runs beside a request)."""

    k: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None

    def request_seed(self, item_id: str) -> int | None:
        if self.seed is None:
            return None
        return int.from_bytes(hashlib.sha256(f"{self.seed}:{item_id}".encode()).digest()[:4], "big")

    def params(self, item_id: str) -> dict[str, Any]:
        """The OpenAI fields of one question's request."""
        return {
            "n": self.k,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.request_seed(item_id),
        }


@dataclass(frozen=True)
class Trajectory:
    """One sampled trajectory of a question.

    ``text`` is the whole trajectory as the model continued it (the reasoning text: model-written
    tokens, the results the service injected, the correction text it may have appended);
    ``injected`` lists the spans of ``text`` the service wrote, in order (each real search's
    ``<information>`` block, tags included, and each correction), so ``model_written()`` is the rest;
    each step's ``search_span`` and ``information_span`` locate its blocks. ``correct`` is exact
    match against the question's gold answers (None when none were given)."""

    question_id: str
    question: str
    index: int
    text: str
    answer: str | None
    correct: bool | None
    finish_reason: str | None
    end_reason: str | None
    steps: tuple[SearchStep, ...]
    injected: tuple[Span, ...]

    def model_written(self) -> list[Span]:
        """The spans of ``text`` the model wrote (everything outside ``injected``)."""
        out: list[Span] = []
        at = 0
        for start, end in self.injected:
            if start > at:
                out.append((at, start))
            at = max(at, end)
        if at < len(self.text):
            out.append((at, len(self.text)))
        return out


def injected_spans(text: str, steps: Sequence[SearchStep]) -> list[Span]:
    """The spans of ``text`` the service wrote: real results' <information> blocks and corrections."""
    spans = [
        (s.information_span.start, s.information_span.end)
        for s in steps
        if s.source == "real" and s.information_span is not None
    ]
    at = text.find(CORRECTION)
    while at >= 0:
        spans.append((at, at + len(CORRECTION)))
        at = text.find(CORRECTION, at + len(CORRECTION))
    return sorted(spans)


def trajectories(item: QAItem, result: ChatResult) -> list[Trajectory]:
    out = []
    golds = item.golden_answers
    for choice in result.choices:
        text = choice.trajectory or ""
        steps = tuple(choice.steps)
        out.append(
            Trajectory(
                question_id=item.id,
                question=item.question,
                index=choice.index,
                text=text,
                answer=choice.answer,
                correct=bool(exact_match(choice.answer, golds)) if golds else None,
                finish_reason=choice.finish_reason,
                end_reason=choice.trace.end_reason if choice.trace else None,
                steps=steps,
                injected=tuple(injected_spans(text, steps)),
            )
        )
    return out


class SamplingRefusedError(RuntimeError):
    """The server refuses n = K (its ``--max-n`` is lower): every question would fail the same way."""


async def sample(
    client: AsyncClient,
    item: QAItem,
    mode: str,
    sampling: Sampling,
    options: Mapping[str, Any],
    force_search: bool = False,
) -> ChatResult:
    """One request of ``n`` = K for one question in one mode."""
    try:
        return await send(client, item, mode, {**options, **sampling.params(item.id)}, force_search)
    except BadRequestError as exc:
        if exc.param == "n":
            raise SamplingRefusedError(
                f"the server refuses n={sampling.k}: {exc}; start it with --max-n {sampling.k} or more"
            ) from exc
        raise


def sample_row(item: QAItem, result: ChatResult) -> dict[str, Any]:
    """A results line: each sample's answer and score, and the request's tokens."""
    samples = []
    for choice in result.choices:
        steps, trace = choice.steps, choice.trace
        samples.append(
            {
                "answer": choice.answer,
                "em": exact_match(choice.answer, item.golden_answers),
                "f1": f1_score(choice.answer, item.golden_answers),
                "answered": bool(normalize_answer(choice.answer or "")),
                "searches": len(steps),
                "real_calls": sum(1 for s in steps if s.source == "real"),
                "finish_reason": choice.finish_reason,
                "end_reason": trace.end_reason if trace else None,
            }
        )
    usage = result.usage
    return {
        "samples": samples,
        "tokens": usage.total_tokens if usage else 0,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
        "cached_tokens": usage.cached_tokens if usage else 0,
    }


def _matches(row: dict[str, Any], sampling: Sampling) -> bool:
    return row.get("sampling") == asdict(sampling)


def read_samples(path: Path, sampling: Sampling) -> list[dict[str, Any]]:
    """The last line of each (id, mode) sampled as ``sampling`` says (other runs' lines are ignored)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                if _matches(row, sampling):
                    rows[(row["id"], row["mode"])] = row
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line
    return list(rows.values())


async def run_samples(
    client: AsyncClient,
    items: Sequence[QAItem],
    modes: Sequence[str],
    results: Path,
    *,
    sampling: Sampling,
    concurrency: int,
    options: Mapping[str, Any],
    progress: bool = True,
    force_search: bool = False,
) -> int:
    """Sample every (question, mode) not yet in ``results`` with the same ``sampling``: ``concurrency``
    requests in flight, each of ``n`` = K trajectories; one line per question and mode as it comes."""
    done = {(r["id"], r["mode"]) for r in read_samples(results, sampling) if r.get("error") is None}
    todo = [(item, mode) for mode in modes for item in items if (item.id, mode) not in done]
    logger.info("%d to sample (K=%d), %d already in %s", len(todo), sampling.k, len(done), results)

    async def sample_one(item: QAItem, mode: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": item.id,
            "mode": mode,
            "question": item.question,
            "golden": list(item.golden_answers),
            "sampling": asdict(sampling),
        }
        started = time.perf_counter()
        try:
            result = await sample(client, item, mode, sampling, options, force_search)
            row |= sample_row(item, result) | {"error": None}
        except SamplingRefusedError:
            raise
        except SSRLError as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["latency_s"] = round(time.perf_counter() - started, 4)
        return row

    return await append_rows(
        todo, sample_one, results, concurrency=concurrency, progress=progress, desc=f"K={sampling.k}"
    )


@contextlib.asynccontextmanager
async def _client(target: FastAPI | str | AsyncClient, api_key: str | None) -> AsyncIterator[AsyncClient]:
    if isinstance(target, AsyncClient):
        yield target
    elif isinstance(target, str):
        async with AsyncClient(base_url=target, api_key=api_key, max_retries=3) as client:
            yield client
    else:
        from service.app import in_process

        async with in_process(target, timeout=None, wait_for_engine=True) as http:
            yield AsyncClient(base_url=str(http.base_url), http_client=http, api_key=api_key, max_retries=3)


async def sample_trajectories(
    target: FastAPI | str | AsyncClient,
    questions: Sequence[str | QAItem],
    k: int,
    *,
    mode: Literal["self", "real", "entropy"] = "self",
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    max_tokens: int = 1024,
    search: Mapping[str, Any] | None = None,
    concurrency: int = 4,
    api_key: str | None = None,
    force_search: bool = False,
    progress: bool = False,
) -> list[list[Trajectory]]:
    """K trajectories of each question, in the questions' order (each list in choice order).

    ``target`` is an app from ``service.app.create_app`` (run here, in-process, its engine loaded
    first), a base URL, or an ``ssrl_client.AsyncClient``. ``questions`` are strings or ``QAItem``s
    (with gold answers, each trajectory's ``correct`` is set). ``search`` takes the search options
    (``backend``, ``top_k``, ``max_turns``...). One request of ``n`` = ``k`` per question, at most
    ``concurrency`` in flight; the server's ``--max-n`` must allow ``k`` (``SamplingRefusedError``).
    A failed request raises (``ssrl_client.SSRLError``)."""
    items = [q if isinstance(q, QAItem) else QAItem(f"q{i}", q, ()) for i, q in enumerate(questions)]
    sampling = Sampling(k=k, temperature=temperature, top_p=top_p, seed=seed)
    options: dict[str, Any] = {"max_tokens": max_tokens, **(search or {})}
    limit = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(items), disable=not progress, unit="q", desc=f"K={k}")

    async def one(client: AsyncClient, item: QAItem) -> list[Trajectory]:
        async with limit:
            result = await sample(client, item, mode, sampling, options, force_search)
        bar.update(1)
        return trajectories(item, result)

    try:
        async with _client(target, api_key) as client:
            return list(await asyncio.gather(*(one(client, item) for item in items)))
    finally:
        bar.close()
