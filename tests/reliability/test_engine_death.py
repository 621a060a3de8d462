"""Engine death while requests are in flight: each gets an OpenAI-shaped 503 (an error frame then
[DONE] on a stream) at once, new requests are refused with a 503, /health turns 503, and the app tells
its runner (``ssrl-serve`` exits non-zero). tests/e2e/test_engine_death_e2e.py kills the real engine."""

from __future__ import annotations

import asyncio

import yaml

from bench._util import ROOT
from service.engine.scripted import ScriptedEngine
from service.settings import Settings
from tests.conftest import build_app, running
from tests.helpers import MODEL, ask, assert_error, assert_error_body, chat, metric, sse_json, wait_until

LONG = " ".join(f"word{i}" for i in range(400))


async def test_in_flight_requests_get_503_and_the_app_reports_the_death() -> None:
    engine = ScriptedEngine(LONG, token_delay=0.01)
    deaths: list[float] = []
    app = build_app(Settings(model=MODEL), engine=engine, on_engine_death=lambda: deaths.append(1.0))
    async with running(app) as client:
        assert (await client.get("/health")).status_code == 200
        bodies = [
            chat("tell me", max_tokens=400),
            chat("tell me", max_tokens=400, stream=True),
            ask("who?", search_mode="self", max_tokens=400),
            ask("who?", search_mode="self", max_tokens=400, stream=True),
        ]
        requests = [asyncio.create_task(client.post("/v1/chat/completions", json=b)) for b in bodies]
        await wait_until(lambda: engine.num_unfinished_requests() == len(bodies))
        engine.healthy = False  # the engine core process "exits"
        async with asyncio.timeout(5):  # never a hang
            responses = await asyncio.gather(*requests)
        for body, response in zip(bodies, responses, strict=True):
            if body.get("stream"):
                assert response.status_code == 200  # the headers had gone out
                events = sse_json(response.text)
                assert_error_body(events[-1], code="engine_dead", type_="server_error")
            else:
                assert_error(response, 503, code="engine_dead", type_="server_error")
                assert response.headers["retry-after"]
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        refused = await client.post("/v1/chat/completions", json=chat("again"))
        assert_error(refused, 503, code="engine_dead")
        await wait_until(lambda: bool(deaths), timeout=5)
        assert deaths == [1.0]  # called once
        assert metric((await client.get("/metrics")).text, "ssrl_engine_ready") == 0.0
        assert engine.num_unfinished_requests() == 0


async def test_a_healthy_engine_never_reports_a_death() -> None:
    deaths: list[float] = []
    app = build_app(
        Settings(model=MODEL), engine=ScriptedEngine(), on_engine_death=lambda: deaths.append(1.0)
    )
    async with running(app) as client:
        response = await client.post("/v1/chat/completions", json=chat())
        await asyncio.sleep(1.5)  # past one watch interval
        assert response.status_code == 200 and (await client.get("/health")).status_code == 200
    assert deaths == []


def test_compose_restarts_the_service() -> None:
    """ssrl-serve exits non-zero when its engine dies; compose's ``restart:`` brings it back."""
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    for name in ("ssrl", "ssrl-cpu"):
        assert compose["services"][name]["restart"] in ("unless-stopped", "always", "on-failure"), name
