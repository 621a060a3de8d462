"""Search chaos under load on the real server: concurrent model-driven real-mode trajectories (no
prefill) while the search server gives each call the next of healthy, slow (past the timeout), 500,
429 with Retry-After and a dropped connection. Every request completes (a failed search is a fallback
marked in the trace), no 5xx, none hung, the engine's running requests back to 0, and the backend's
metrics count each failure kind exactly as often as the search server caused it.
``python -m bench.search_chaos`` is the 64-client version, with phases on a timer."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from bench.flapping_searxng import ERROR_KIND, ChaosSearch
from bench.search_chaos import drive
from tests.e2e.launcher import start_server
from tests.helpers import metric

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

CLIENTS = 8
PER_CLIENT = 1
MAX_TOKENS = 256  # each trajectory searches, most more than once; short enough for CI's time


def test_every_request_completes_while_search_flips_between_failures(tmp_path: Path) -> None:
    with ChaosSearch(period=0, slow_seconds=3.0) as chaos:
        server = start_server(
            tmp_path, "--search-mode", "off", *chaos.server_args(timeout=1.0, retries=1, max_retry_wait=0.2)
        )
        try:
            outcomes = asyncio.run(
                drive(
                    server.base_url,
                    CLIENTS,
                    per_client=PER_CLIENT,
                    duration=600,
                    hung_after=240,
                    max_tokens=MAX_TOKENS,
                    headers={"Authorization": f"Bearer {server.api_key}"},
                )
            )
            metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
        finally:
            server.stop()
        served = Counter(chaos.served)
    assert Counter(o for o, _, _ in outcomes) == Counter({"ok": CLIENTS * PER_CLIENT}), outcomes
    steps = [step for _, trace, _ in outcomes if trace for step in trace["steps"]]
    assert steps, "the model searched in none of the trajectories"
    sources = Counter(step["source"] for step in steps)
    assert set(sources) <= {"real", "fallback"} and sources["fallback"] >= 1, sources
    for step in steps:
        if step["source"] == "fallback":  # marked with the failure that caused it
            assert step["error"] in ERROR_KIND.values(), step
        else:
            assert step["results"][0]["title"] == "Chaos result", step
    for phase, kind in ERROR_KIND.items():  # each failure the server caused was counted as its kind
        assert served[phase] >= 1, served
        counted = metric(metrics, "ssrl_search_errors_total", backend="searxng", kind=kind)
        assert counted == served[phase], (kind, counted, served)
    assert metric(metrics, "ssrl_search_calls_total", backend="searxng") == sum(served.values())
    assert metric(metrics, "ssrl_engine_unfinished_requests") == 0.0
    statuses = [
        line
        for line in metrics.splitlines()
        if line.startswith('ssrl_requests_total{route="/v1/chat/completions"')
    ]
    assert statuses and not [line for line in statuses if 'status="5' in line], statuses
