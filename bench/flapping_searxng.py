"""A SearXNG-shaped search server on loopback that flips between healthy, slow (past the service's
search timeout), 500s, 429 with Retry-After and dropped connections, counting what it served.

``period`` > 0 flips on a timer (every ``period`` seconds, all callers see the same phase, as a real
backend's outage hits everyone); ``period`` == 0 gives each call the next phase in turn, so that a short
run sees every phase. Runs its own event loop in a thread: ``with ChaosSearch(...) as chaos: chaos.url``.
The load benchmark that drives the service against it is ``bench/search_chaos.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from typing import Any

PHASES = ("healthy", "slow", "error500", "ratelimit", "drop")
#: The search metrics' error kind (``ssrl_search_errors_total{kind}``) each failing phase causes.
ERROR_KIND = {"slow": "timeout", "error500": "http_status", "ratelimit": "rate_limited", "drop": "connection"}

_RESULTS = json.dumps(
    {
        "results": [
            {"title": "Chaos result", "url": "https://example.org/chaos", "content": "A healthy answer text."}
        ]
    }
).encode()


class ChaosSearch:
    def __init__(self, *, period: float = 0.0, slow_seconds: float = 5.0, retry_after: int = 1) -> None:
        self.period = period
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        #: Calls served per phase.
        self.served: Counter[str] = Counter()
        self.url = ""
        self._calls = 0
        self._started = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def phase(self) -> str:
        if self.period > 0:
            return PHASES[int((time.monotonic() - self._started) / self.period) % len(PHASES)]
        self._calls += 1
        return PHASES[(self._calls - 1) % len(PHASES)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()).strip():  # request line and headers
                pass
            phase = self.phase()
            self.served[phase] += 1
            if phase == "slow":
                await asyncio.sleep(self.slow_seconds)
                return
            if phase == "drop":  # promises 500 bytes, sends 6, hangs up
                writer.write(
                    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"resu'
                )
                await writer.drain()
                return
            status, payload, extra = {
                "healthy": ("200 OK", _RESULTS, ""),
                "error500": ("500 Internal Server Error", b"chaos", ""),
                "ratelimit": ("429 Too Many Requests", b"slow down", f"Retry-After: {self.retry_after}\r\n"),
            }[phase]
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                f"{extra}Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._started = time.monotonic()
        self._ready.set()
        async with server:
            await self._stop.wait()

    def __enter__(self) -> ChaosSearch:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="chaos-search", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the chaos search server did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def server_args(self, timeout: float, retries: int = 1, max_retry_wait: float = 0.2) -> list[str]:
        """``ssrl-serve`` flags that point its SearXNG backend here, with no result cache."""
        return [
            "--search.backend", "searxng",
            "--search.searxng.base-url", self.url,
            "--search.timeout", str(timeout),
            "--search.retries", str(retries),
            "--search.max-retry-wait", str(max_retry_wait),
            "--search.cache-ttl", "0",
        ]  # fmt: skip
