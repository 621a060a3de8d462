"""One real server (vLLM on the embedded SSRL model) shared by the end-to-end tests.

It runs with ``--search-mode off`` so that requests without ``search_mode`` are plain chat (what the
chat tests check); the agent tests name their mode.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import openai
import pytest

from service.settings import EMBEDDED_MODEL_NAME
from tests.e2e.launcher import RunningServer, start_server

MODEL = EMBEDDED_MODEL_NAME


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("e2e"), "--search-mode", "off")
    yield running
    code = running.stop()
    # uvicorn re-raises SIGTERM after its graceful shutdown: that is the clean exit status
    assert code == -signal.SIGTERM, f"server exited with {code} on SIGTERM:\n{running.log_tail()}"


@pytest.fixture()
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120)
