"""Graceful shutdown of the real server: in-flight streams finish, the engine is shut down."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import MODEL
from tests.e2e.launcher import start_server

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)


def _engine_children(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_sigterm_lets_the_stream_finish_then_stops_the_engine(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--shutdown-timeout", "60")
    try:
        children = _engine_children(server.process.pid)
        assert children, "vLLM's engine core runs as a child process"
        headers = {"Authorization": f"Bearer {server.api_key}"}
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Tell me a story."}],
            "max_tokens": 120,
            "temperature": 0,
            "stream": True,
        }
        events: list[str] = []
        started = threading.Event()

        def consume() -> None:
            with httpx.stream(
                "POST", f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=120
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(line[6:])
                        started.set()

        reader = threading.Thread(target=consume)
        reader.start()
        assert started.wait(60)
        server.process.send_signal(signal.SIGTERM)
        at_signal = len(events)
        reader.join(120)
        code = server.process.wait(120)
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status is SIGTERM's
        assert code == -signal.SIGTERM, server.log_tail()
        assert "engine shut down" in server.log_path.read_text()
        assert events[-1] == "[DONE]"
        finishes = [c["finish_reason"] for e in events[:-1] for c in json.loads(e)["choices"]]
        # the stream ran to its own end (the budget, or the model's end of turn), not cut off by
        # the shutdown: chunks kept coming after SIGTERM, and the last one carries a finish reason
        assert len(events) - 1 > at_signal + 1, (at_signal, len(events))
        assert finishes[-1] in ("length", "stop")
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"engine processes left running: {alive}"
    finally:
        server.stop()  # a no-op once it has exited; a failing test must not leave it running
