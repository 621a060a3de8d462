"""bench._util.Server trusts only its own process's answers: free_port() lets a port go before the
server binds it, and another process (the other test worker's servers) can take it meanwhile."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench._util import PortTakenError, Server, free_port, listens_on


class Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def foreign() -> Iterator[int]:
    """A healthy server of this process on a port: someone else's, to a Server started on it."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_a_port_answered_by_another_process_is_refused_and_the_server_stopped(
    foreign: int, tmp_path: Path
) -> None:
    # the child never binds (it would fail to: the port is taken); the foreign server answers
    started: list[subprocess.Popen[bytes]] = []

    class Recorded(Server):
        def _wait_healthy(self, args: list[str], health: str, timeout: float) -> None:
            started.append(self.process)
            super()._wait_healthy(args, health, timeout)

    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    with pytest.raises(PortTakenError, match=f"port {foreign} answers"):
        Recorded(sleeper, foreign, tmp_path / "s.log", health="/", timeout=30)
    assert started[0].wait(30) is not None  # stopped, not left running


def test_a_server_listening_itself_is_healthy(tmp_path: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with Server(args, port, tmp_path / "s.log", health="/", timeout=60) as server:
        assert listens_on(server.process.pid, port)
    assert server.process.poll() is not None


def test_listens_on_sees_this_process_listening(foreign: int) -> None:
    assert listens_on(os.getpid(), foreign)
    assert not listens_on(os.getpid(), free_port())
