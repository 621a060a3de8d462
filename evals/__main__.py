"""``ssrl-eval``: run a QA set through the service in several modes; write results, a table and a plot
(with ``--samples K``: K sampled trajectories per question, pass@k and maj@k by k)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict

from evals.datasets import QAItem, load_dataset
from evals.diagnostics import diagnose, read_subjects
from evals.diagnostics import markdown as diagnostics_table
from evals.report import markdown, markdown_samples, plot, plot_samples, summarise, summarise_samples
from evals.runner import read_results, run_eval
from evals.sampling import Sampling, read_samples, run_samples
from service.protocol import SearchMode
from ssrl_client import AsyncClient

logger = logging.getLogger("evals")


def _agent_modes() -> list[SearchMode]:
    return ["self", "real", "entropy"]


class EvalSettings(BaseSettings):
    """Settings of ssrl-eval."""

    model_config = SettingsConfigDict(
        env_prefix="SSRL_EVAL_",
        cli_kebab_case=True,
        cli_prog_name="ssrl-eval",
        cli_hide_none_type=True,
        cli_implicit_flags=True,
    )

    base_url: str | None = Field(default=None, description="A running service; unset = start one in-process.")
    wait_seconds: float = Field(
        default=900,
        ge=0,
        description="With --base-url: how long to wait for the service's /health to say its model is "
        "loaded before the first question.",
    )
    api_key: SecretStr | None = Field(default=None, description="Its API key.")
    dataset: Path | None = Field(default=None, description="JSONL QA set; unset = fanoutqa's dev questions.")
    limit: int | None = Field(default=None, ge=1, le=1_000_000, description="Ask only the first N questions.")
    modes: list[SearchMode] = Field(default_factory=_agent_modes, description="Search modes to compare.")
    backend: str | None = Field(
        default=None, max_length=64, description="Search backend; unset = the server's."
    )
    top_k: int | None = Field(default=None, ge=1, le=50, description="Results per search.")
    max_tokens: int = Field(default=512, ge=1, le=65_536, description="Trajectory budget per question.")
    concurrency: int = Field(default=8, ge=1, le=1024, description="Questions in flight.")
    output: Path = Field(
        default=Path("eval-results"), description="Folder for results.jsonl, report.md, report.png."
    )
    progress: bool = Field(default=True, description="Show a progress bar.")
    force_search: bool = Field(
        default=False,
        description="Start each trajectory with a search for the question (a prefill), for models that "
        "do not write the tags themselves, such as the embedded SmolLM2.",
    )
    samples: int = Field(
        default=1,
        ge=1,
        le=128,
        description="Trajectories per question and mode (K); above 1, one request of n=K each, scored by "
        "pass@k, maj@k and answered@k into samples.jsonl, samples.md and samples.png.",
    )
    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        description="Sampling temperature; unset = greedy (the server's agent default) with one sample, "
        "1.0 with --samples above 1.",
    )
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, description="Nucleus sampling; unset = 1.0.")
    seed: int | None = Field(
        default=None,
        ge=0,
        description="Seed; each question's request gets a seed derived from it and the question's id.",
    )


async def wait_until_healthy(
    base_url: str, timeout: float, *, interval: float = 2.0, transport: httpx.AsyncBaseTransport | None = None
) -> None:
    """Return once the service's ``/health`` answers 200 (its engine loads for a minute or more after
    the port opens, and a question asked meanwhile gets a 503). Raises RuntimeError when the service
    says its model failed to load, TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    status = "unreachable"
    async with httpx.AsyncClient(base_url=base_url, timeout=10, transport=transport) as http:
        while True:
            try:
                response = await http.get("/health")
                if response.status_code == 200:
                    return
                body = response.json() if "json" in response.headers.get("content-type", "") else {}
                status = str(body.get("status", response.status_code))
                if status == "failed":
                    raise RuntimeError(
                        f"the service at {base_url} failed to load its model: {body.get('error')}"
                    )
            except httpx.TransportError as exc:
                status = f"unreachable ({type(exc).__name__})"
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the service at {base_url} was not ready after {timeout:.0f} s ({status})"
                )
            logger.info("waiting for %s: %s", base_url, status)
            await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def service_client(settings: EvalSettings) -> AsyncIterator[AsyncClient]:
    """A client of the running service, or of one started in-process with the embedded defaults."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if settings.base_url:
        await wait_until_healthy(settings.base_url, settings.wait_seconds)
        async with AsyncClient(base_url=settings.base_url, api_key=key, max_retries=3) as client:
            yield client
        return
    from service.app import create_app, in_process
    from service.settings import Settings

    settings_ = Settings()
    if settings.samples > settings_.max_n:  # the in-process server takes n = K
        settings_ = settings_.model_copy(update={"max_n": settings.samples})
    async with in_process(create_app(settings_), timeout=None, wait_for_engine=True) as http:
        yield AsyncClient(base_url=str(http.base_url), http_client=http, max_retries=3)


def _title(settings: EvalSettings, items: list[QAItem]) -> str:
    name = settings.dataset.name if settings.dataset else "fanoutqa dev (single-hop)"
    return f"{name}, {len(items)} questions" + (", first search forced" if settings.force_search else "")


async def evaluate_samples(settings: EvalSettings, items: list[QAItem], options: dict[str, Any]) -> Path:
    """K trajectories per question and mode; pass@k, maj@k and answered@k by k."""
    sampling = Sampling(
        k=settings.samples,
        temperature=1.0 if settings.temperature is None else settings.temperature,
        top_p=1.0 if settings.top_p is None else settings.top_p,
        seed=settings.seed,
    )
    results = settings.output / "samples.jsonl"
    async with service_client(settings) as client:
        await run_samples(
            client,
            items,
            settings.modes,
            results,
            sampling=sampling,
            concurrency=settings.concurrency,
            options=options,
            progress=settings.progress,
            force_search=settings.force_search,
        )
    wanted = {item.id for item in items}
    rows = [r for r in read_samples(results, sampling) if r["id"] in wanted and r["mode"] in settings.modes]
    summaries = summarise_samples(rows, settings.modes, sampling.k)
    seed = "unseeded" if sampling.seed is None else f"seed {sampling.seed}"
    title = (
        f"{_title(settings, items)}, K={sampling.k}, temperature {sampling.temperature:g}, "
        f"top_p {sampling.top_p:g}, {seed}"
    )
    table = markdown_samples(summaries, title)
    (settings.output / "samples.md").write_text(table)
    plot_samples(summaries, settings.output / "samples.png", title)
    print(table)
    return settings.output


def write_report(settings: EvalSettings, items: list[QAItem], rows: list[dict[str, Any]]) -> str:
    """report.md and report.png in the output folder: a row per mode, and for a set that says what
    each question is about (bench/data/natural-*.jsonl) the figures per popularity group."""
    summaries = summarise(rows, settings.modes)
    title = _title(settings, items)
    table = markdown(summaries, title, concurrency=settings.concurrency)
    subjects = read_subjects(settings.dataset) if settings.dataset else {}
    if subjects:
        by_group = diagnostics_table(diagnose(rows, subjects))
        table += "\n### By popularity: what went wrong where\n\n" + by_group
    settings.output.mkdir(parents=True, exist_ok=True)
    (settings.output / "report.md").write_text(table)
    plot(summaries, settings.output / "report.png", title)
    return table


async def evaluate(settings: EvalSettings) -> Path:
    items, bad = load_dataset(settings.dataset)
    if bad:
        print(
            f"skipped {len(bad)} bad line(s): " + ", ".join(f"{n} ({why})" for n, why in bad[:20]),
            file=sys.stderr,
        )
    items = items[: settings.limit] if settings.limit else items
    options: dict[str, Any] = {
        "max_tokens": settings.max_tokens,
        "backend": settings.backend,
        "top_k": settings.top_k,
    }
    if settings.samples > 1:
        return await evaluate_samples(settings, items, options)
    options |= {"temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed}
    results = settings.output / "results.jsonl"
    async with service_client(settings) as client:
        await run_eval(
            client,
            items,
            settings.modes,
            results,
            concurrency=settings.concurrency,
            options=options,
            progress=settings.progress,
            force_search=settings.force_search,
        )
    wanted = {item.id for item in items}
    rows = [r for r in read_results(results) if r["id"] in wanted and r["mode"] in settings.modes]
    print(write_report(settings, items, rows))
    return settings.output


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = CliApp.run(EvalSettings, cli_args=sys.argv[1:] if argv is None else argv)
    asyncio.run(evaluate(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
