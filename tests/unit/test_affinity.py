"""Session affinity inside the service: the X-Session-ID of a request reaches the engine call, and
with vLLM data parallelism it pins the request to one rank; vLLM's own metrics join /metrics."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from service.engine.base import GenerationChunk, SamplingOptions
from service.engine.scripted import ScriptedEngine, search_then
from service.engine.vllm import VllmEngine, data_parallel_rank
from tests.conftest import serve
from tests.helpers import MODEL, chat, metric


@dataclass
class KeyRecordingEngine(ScriptedEngine):
    """A scripted engine that notes the session key each generation ran under."""

    keys: list[str | None] = field(default_factory=list)
    token_delay: float = 0.01

    def generate(
        self,
        prompt_token_ids: list[int],
        options: SamplingOptions,
        request_id: str,
        *,
        session_key: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        self.keys.append(session_key)
        return super().generate(prompt_token_ids, options, request_id, session_key=session_key)


def test_rank_is_stable_per_key_and_spreads_over_ranks() -> None:
    assert data_parallel_rank("conv-1", 4) == data_parallel_rank("conv-1", 4)
    ranks = Counter(data_parallel_rank(f"conv-{i}", 4) for i in range(400))
    assert set(ranks) == {0, 1, 2, 3} and min(ranks.values()) > 60
    assert data_parallel_rank(None, 4) is None and data_parallel_rank("", 4) is None
    assert data_parallel_rank("conv-1", 1) is None


async def test_each_request_sees_its_own_session_key() -> None:
    engine = KeyRecordingEngine()
    async with serve(engine) as client:
        replies = await asyncio.gather(
            *(
                client.post("/v1/chat/completions", json=chat(f"q{i}"), headers={"X-Session-ID": f"s{i}"})
                for i in range(6)
            ),
            client.post("/v1/chat/completions", json=chat("no key")),
            # the router's body form is accepted (and ignored) by the service
            client.post(
                "/v1/chat/completions", json=chat("body", session_params={"session_id": "b"}, user="u")
            ),
        )
    assert [r.status_code for r in replies] == [200] * 8
    assert sorted(k or "-" for k in engine.keys) == ["-", "-", "s0", "s1", "s2", "s3", "s4", "s5"]


async def test_every_engine_call_of_a_request_carries_its_key() -> None:
    """Plain chat's choices, text completions and each generation turn of an agent run: the key
    is passed to the engine explicitly, with the request."""
    engine = ScriptedEngine(search_then("<answer> Paris </answer>"))
    headers = {"X-Session-ID": "conv-7"}
    async with serve(engine) as client:
        for body in (chat("hi", n=2), chat("Capital of France?", search_mode="real")):
            assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status_code == 200
        text = {"model": MODEL, "prompt": ["a", "b"], "max_tokens": 2}
        assert (await client.post("/v1/completions", json=text, headers=headers)).status_code == 200
        assert (await client.post("/v1/completions", json=text)).status_code == 200
    keys = [call.session_key for call in engine.calls]
    assert keys == ["conv-7"] * 6 + [None] * 2  # 2 choices, 2 agent turns, 2 prompts; then no key


class FakeAsyncLLM:
    """What VllmEngine uses of vLLM's AsyncLLM, recording the data-parallel rank it is given."""

    def __init__(self, dp_size: int) -> None:
        self.vllm_config = SimpleNamespace(parallel_config=SimpleNamespace(data_parallel_size=dp_size))
        self.model_config = SimpleNamespace(max_model_len=2048)
        self.ranks: list[int | None] = []
        self.errored = False

    def get_num_unfinished_requests(self) -> int:
        return 0

    def shutdown(self) -> None:
        pass

    def get_tokenizer(self) -> Any:
        return SimpleNamespace(
            encode=lambda text, add_special_tokens=False: [1, 2],
            apply_chat_template=lambda messages, add_generation_prompt, tokenize: "prompt",
        )

    async def generate(self, prompt: Any, params: Any, request_id: str, **kwargs: Any) -> AsyncIterator[Any]:
        self.ranks.append(kwargs.get("data_parallel_rank"))
        output = SimpleNamespace(
            text="ok", token_ids=[3], logprobs=None, finish_reason="stop", stop_reason=None
        )
        yield SimpleNamespace(outputs=[output], finished=True, num_cached_tokens=0)


async def test_vllm_engine_pins_a_session_to_one_data_parallel_rank() -> None:
    llm = FakeAsyncLLM(dp_size=4)
    async with serve(VllmEngine(llm)) as client:
        for turn in range(3):
            for key in ("conv-a", "conv-b", "conv-c"):
                reply = await client.post(
                    "/v1/chat/completions",
                    json=chat(f"turn {turn}", max_tokens=1),
                    headers={"X-Session-ID": key},
                )
                assert reply.status_code == 200, reply.text
        await client.post("/v1/chat/completions", json=chat("no key", max_tokens=1))
    expected = [data_parallel_rank(k, 4) for k in ("conv-a", "conv-b", "conv-c")] * 3 + [None]
    assert llm.ranks == expected


async def test_one_data_parallel_rank_passes_no_rank() -> None:
    llm = FakeAsyncLLM(dp_size=1)
    async with serve(VllmEngine(llm)) as client:
        reply = await client.post(
            "/v1/chat/completions", json=chat("q", max_tokens=1), headers={"X-Session-ID": "conv-a"}
        )
    assert reply.status_code == 200 and llm.ranks == [None]


@dataclass
class EngineWithMetrics(ScriptedEngine):
    metrics_registry: CollectorRegistry = field(default_factory=CollectorRegistry)


async def test_engine_metrics_are_served_beside_the_services_own() -> None:
    engine = EngineWithMetrics()
    waiting = Gauge(
        "vllm:num_requests_waiting", "Waiting.", ["model_name", "engine"], registry=engine.metrics_registry
    )
    waiting.labels("m", "0").set(3)
    async with serve(engine) as client:
        text = (await client.get("/metrics")).text
        waiting.labels("m", "0").set(5)  # read live, not copied at start-up
        later = (await client.get("/metrics")).text
    assert metric(text, "vllm:num_requests_waiting", model_name="m", engine="0") == 3
    assert metric(later, "vllm:num_requests_waiting", model_name="m", engine="0") == 5
    assert metric(text, "ssrl_engine_ready") == 1
