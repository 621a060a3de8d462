"""transport.cancel_on_disconnect: the work stops when the client leaves, and when the handler itself
is cancelled (shutdown) the work stops too, before the handler's own clean-up (its slot) runs."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from service.transport import ClientDisconnectedError, cancel_on_disconnect


def _request(disconnect: asyncio.Event) -> Request:
    async def receive() -> dict[str, object]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


def _work(events: list[str], started: asyncio.Event) -> object:
    async def work() -> str:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # stopping takes a moment, as aborting an engine request does
            events.append("work stopped")
        return "never"

    return work()


async def test_the_result_comes_back_when_the_client_stays() -> None:
    async def work() -> str:
        return "done"

    assert await cancel_on_disconnect(_request(asyncio.Event()), work()) == "done"


async def test_a_disconnect_stops_the_work() -> None:
    events: list[str] = []
    started, gone = asyncio.Event(), asyncio.Event()
    waiting = asyncio.create_task(cancel_on_disconnect(_request(gone), _work(events, started)))  # type: ignore[arg-type]
    await started.wait()
    gone.set()
    with pytest.raises(ClientDisconnectedError):
        await waiting
    assert events == ["work stopped"]


async def test_cancelling_the_handler_stops_the_work_before_its_slot_is_released() -> None:
    events: list[str] = []
    started = asyncio.Event()

    async def handler() -> None:
        try:
            await cancel_on_disconnect(_request(asyncio.Event()), _work(events, started))  # type: ignore[arg-type]
        finally:
            events.append("slot released")

    running = asyncio.create_task(handler())
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert events == ["work stopped", "slot released"]
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
