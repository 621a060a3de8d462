"""Start the real server (``python -m service``) as a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench._util import PortTakenError, free_port, listens_on

#: KV-cache block size of the test server: prefix-cache hits come in whole blocks.
BLOCK = 32
STARTUP_TIMEOUT = float(os.environ.get("SSRL_TEST_STARTUP_TIMEOUT", "900"))


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    base_url: str
    api_key: str
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    def engine_cores(self) -> list[psutil.Process]:
        """vLLM's engine core processes under the server (vLLM names them VLLM::EngineCore)."""
        cores = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if "EngineCore" in child.name() or any("EngineCore" in part for part in child.cmdline()):
                    cores.append(child)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return cores

    def stop(self, timeout: float = 90) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return int(self.process.returncode)


def start_server(log_dir: Path, *extra: str, api_key: str = "e2e-key", tries: int = 3) -> RunningServer:
    """The server on a free loopback port, healthy; on another port if one was taken meanwhile
    (free_port() lets the port go before the server binds it: the other worker may take it)."""
    for attempt in range(1, tries + 1):
        try:
            return _start_on(free_port(), log_dir, extra, api_key)
        except PortTakenError:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")


def _start_on(port: int, log_dir: Path, extra: tuple[str, ...], api_key: str) -> RunningServer:
    log_path = log_dir / f"server-{port}.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    args = [
        sys.executable,
        "-m",
        "service",
        "--port",
        str(port),
        "--api-keys",
        api_key,
        "--engine.max-model-len",
        "2048",
        *extra,
    ]
    log = log_path.open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = RunningServer(process, f"http://127.0.0.1:{port}", api_key, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log_tail()}")
        try:
            healthy = httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            healthy = False
        if healthy:
            if listens_on(process.pid, port):
                return server
            server.stop()
            raise PortTakenError(f"port {port} answers /health, but not from the server started on it")
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"server not healthy after {STARTUP_TIMEOUT}s:\n{server.log_tail()}")
