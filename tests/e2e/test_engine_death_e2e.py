"""Engine death on the real server: vLLM's engine core process is killed while streaming and
non-streaming requests are in flight. Each gets an OpenAI-shaped 503 (an error frame then [DONE] on
a stream) within seconds, /health turns 503, and the server exits non-zero for its
supervisor to restart it."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import MODEL
from tests.e2e.launcher import start_server

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

#: From the kill to every in-flight request's answer, and to the server's exit (seconds).
ANSWER_WITHIN = 15.0
EXIT_WITHIN = 60.0


def test_killing_the_engine_core_fails_requests_fast_and_exits_non_zero(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--search-mode", "off")
    try:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        cores = server.engine_cores()
        assert cores, "no engine core among the server's children"
        core = cores[0]
        outcomes: dict[int, tuple[int, list[str], float]] = {}
        streaming = threading.Barrier(3)  # the two streams and the killer

        def request(index: int, stream: bool) -> None:
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Tell me a long story, number {index}."}],
                "max_tokens": 1000,
                "temperature": 1.0,
                "stream": stream,
                # a story that ends by itself before the kill would leave fewer than four in flight
                "ignore_eos": True,
                "repetition_detection": {"max_pattern_size": 0},
            }
            with httpx.stream(
                "POST", f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=120
            ) as response:
                lines = []
                for line in response.iter_lines():
                    if not line:
                        continue
                    lines.append(line)
                    if stream and len(lines) == 2:  # the role chunk and some text: generating
                        streaming.wait(60)
                outcomes[index] = (response.status_code, lines, time.monotonic())

        threads = [threading.Thread(target=request, args=(i, i % 2 == 0)) for i in range(4)]
        for thread in threads:
            thread.start()
        streaming.wait(60)
        # a loaded machine can start a thread late: kill only once the engine holds all four requests
        deadline = time.monotonic() + 60
        while (held := server.metric("ssrl_engine_unfinished_requests")) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert held == 4, server.log_tail()
        killed = time.monotonic()
        core.send_signal(signal.SIGKILL)

        health: list[int] = []
        while (any(t.is_alive() for t in threads) or 503 not in health and 0 not in health) and (
            time.monotonic() - killed < ANSWER_WITHIN
        ):
            try:
                health.append(httpx.get(f"{server.base_url}/health", timeout=2).status_code)
            except httpx.HTTPError:
                health.append(0)  # already stopped listening
            time.sleep(0.05)
        for thread in threads:
            thread.join(max(0.0, killed + ANSWER_WITHIN - time.monotonic()))
        assert not any(t.is_alive() for t in threads), "a request hung after the engine died"
        assert sorted(outcomes) == [0, 1, 2, 3]
        for index, (status, lines, finished) in outcomes.items():
            assert finished - killed < ANSWER_WITHIN
            if index % 2 == 0:  # streams: an error frame then [DONE]
                assert status == 200 and lines[-1] == "data: [DONE]", lines[-3:]
                error = json.loads(lines[-2][len("data: ") :])["error"]
            else:
                assert status == 503, lines
                error = json.loads("".join(lines))["error"]
            assert set(error) == {"message", "type", "param", "code"}
            assert (error["code"], error["type"]) == ("engine_dead", "server_error"), error
        # 200 only in the moment before vLLM notices its core is gone; then 503 until the server stops
        # (a loaded machine can miss the 503s: the first poll may find the server already gone)
        first_down = next((i for i, status in enumerate(health) if status != 200), len(health))
        assert health[first_down:] and set(health[first_down:]) <= {503, 0}, health
        code = server.process.wait(EXIT_WITHIN)
        assert code == 1, f"exit status {code}:\n{server.log_tail()}"
        assert "the engine has died" in server.log_path.read_text()
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
