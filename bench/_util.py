"""Helpers of the benchmark scripts: servers on loopback, percentiles, tables and JSON output."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """Whether the process ``pid`` or one of its children listens on the loopback ``port``.

    free_port() releases the port it found before the server binds it, so another process (the
    other test worker's servers) can take it meanwhile; the server then fails to bind while the
    other one answers its health checks. This tells the two apart."""
    try:
        family = {pid} | {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return False
    return any(
        conn.pid in family and conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        for conn in psutil.net_connections(kind="tcp")
    )


class PortTakenError(RuntimeError):
    """The port answered, but from another process than the server started on it."""


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[int(q) - 1]


class Server:
    """A server subprocess on loopback, stopped with SIGTERM."""

    def __init__(
        self,
        args: list[str],
        port: int,
        log: Path,
        health: str = "/health",
        timeout: float = 900,
        env: dict[str, str] | None = None,
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        quiet = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_DO_NOT_TRACK": "1"}
        env = {**os.environ, **quiet, **(env or {})}
        self.log = log
        self.process = subprocess.Popen(
            args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            self._wait_healthy(args, health, timeout)
        except BaseException:  # not healthy in time, or a SIGTERM (sys.exit) while starting: no orphan
            self.stop()
            raise

    def _wait_healthy(self, args: list[str], health: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{args[:3]} exited; see {self.log}")
            try:
                healthy = httpx.get(self.url + health, timeout=2).status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy:
                if listens_on(self.process.pid, self.port):
                    return
                raise PortTakenError(f"port {self.port} answers, but not from {args[:3]}; see {self.log}")
            time.sleep(1)
        raise RuntimeError(f"{args[:3]} not healthy in {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ssrl_server(log_dir: Path, *extra: str, env: dict[str, str] | None = None, tries: int = 3) -> Server:
    """``python -m service`` on a free loopback port; on another port if one was taken meanwhile."""
    for attempt in range(1, tries + 1):
        port = free_port()
        args = [sys.executable, "-m", "service", "--port", str(port), "--log-level", "warning", *extra]
        try:
            return Server(args, port, log_dir / f"ssrl-{port}.log", env=env)
        except PortTakenError:
            if attempt == tries:
                raise
            logger.warning("port %d was taken while the server started; starting it on another", port)
    raise AssertionError("unreachable")


def retriever_server(log_dir: Path) -> Server:
    """``ssrl-retriever`` (the embedded index) on a free loopback port, as every search benchmark uses it."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "service.search.retriever_server",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    return Server(args, port, log_dir / f"retriever-{port}.log")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, **payload}
    path.write_text(json.dumps(payload, indent=2))


def write_results(out: Path, payload: dict[str, Any], markdown: str) -> None:
    """A finished benchmark's JSON at ``out`` and its markdown report beside it (printed too); the
    ``.partial.json`` it kept while running is removed."""
    print("\n" + markdown)
    write_json(out, payload)
    out.with_suffix(".md").write_text(markdown + "\n")
    out.with_suffix(".partial.json").unlink(missing_ok=True)
