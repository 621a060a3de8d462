"""``ssrl-eval``: run a QA set through the service in several modes; write results, a table and a plot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict

from evals.datasets import load_dataset
from evals.report import markdown, plot, summarise
from evals.runner import read_results, run_eval
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


@contextlib.asynccontextmanager
async def service_client(settings: EvalSettings) -> AsyncIterator[AsyncClient]:
    """A client of the running service, or of one started in-process with the embedded defaults."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if settings.base_url:
        async with AsyncClient(base_url=settings.base_url, api_key=key, max_retries=3) as client:
            yield client
        return
    from service.app import create_app, in_process
    from service.settings import Settings

    async with in_process(create_app(Settings()), timeout=None, wait_for_engine=True) as http:
        yield AsyncClient(base_url=str(http.base_url), http_client=http, max_retries=3)


async def evaluate(settings: EvalSettings) -> Path:
    items, bad = load_dataset(settings.dataset)
    if bad:
        print(
            f"skipped {len(bad)} bad line(s): " + ", ".join(f"{n} ({why})" for n, why in bad[:20]),
            file=sys.stderr,
        )
    items = items[: settings.limit] if settings.limit else items
    results = settings.output / "results.jsonl"
    options = {"max_tokens": settings.max_tokens, "backend": settings.backend, "top_k": settings.top_k}
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
    summaries = summarise(rows, settings.modes)
    name = settings.dataset.name if settings.dataset else "fanoutqa dev (single-hop)"
    title = f"{name}, {len(items)} questions" + (", first search forced" if settings.force_search else "")
    table = markdown(summaries, title, concurrency=settings.concurrency)
    (settings.output / "report.md").write_text(table)
    plot(summaries, settings.output / "report.png", title)
    print(table)
    return settings.output


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = CliApp.run(EvalSettings, cli_args=sys.argv[1:] if argv is None else argv)
    asyncio.run(evaluate(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
