"""What bounds a generation in every search mode: the one context rule (``max_tokens`` past the
context is a 400 in every mode, as in plain chat), the agent modes' default trajectory budget, and
the repetition stop (vLLM's repetition detection, played by the scripted engine), which ends a
degenerate loop early with finish_reason ``length`` and its own reason."""

from __future__ import annotations

import ast
import importlib.util
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from service.engine.base import RepetitionStop
from service.engine.scripted import ScriptedEngine, search_then
from service.protocol import SEARCH_MODES
from tests.conftest import serve
from tests.fakes import FakeBackend
from tests.helpers import ask, assert_error, sse_payloads

URL = "/v1/chat/completions"
LOOP = "<think> I am not sure about" + " the occupation of" * 300
#: the default stop: patterns of 3 to 32 tokens, 8 times in a row
DEFAULT_STOP = RepetitionStop(max_pattern=32, min_count=8, min_pattern=3)
#: "<think>", " I", " am", " not", " sure", " about", then " the occupation of" 8 times
STOPPED_AFTER = 6 + 3 * 8


def _tools(mode: str) -> dict[str, object]:
    if mode != "client":
        return {}
    return {"tools": [{"type": "function", "function": {"name": "search"}}]}


@pytest.mark.parametrize("mode", SEARCH_MODES)
async def test_max_tokens_past_the_context_is_a_400_in_every_mode(mode: str) -> None:
    engine = ScriptedEngine(context_length=256)
    async with serve(engine, FakeBackend(name="local")) as client:
        past = await client.post(URL, json=ask(search_mode=mode, max_tokens=1_000_000_000, **_tools(mode)))
        newer = await client.post(URL, json=ask(search_mode=mode, max_completion_tokens=256, **_tools(mode)))
    error = assert_error(past, 400, code="context_length_exceeded", param="max_tokens")
    assert "256" in error["message"] and "prompt tokens" in error["message"]
    assert_error(newer, 400, code="context_length_exceeded", param="max_completion_tokens")
    assert engine.calls == []  # refused before anything ran


@pytest.mark.parametrize("mode", ["self", "real", "entropy", "client"])
async def test_a_prompt_that_fills_the_context_is_a_400_in_every_agent_mode(mode: str) -> None:
    engine = ScriptedEngine(context_length=256)
    async with serve(engine, FakeBackend(name="local")) as client:
        r = await client.post(URL, json=ask("word " * 300, search_mode=mode, **_tools(mode)))
    assert_error(r, 400, code="context_length_exceeded", param="messages")


async def _first_budget(mode: str, **settings: object) -> int:
    """The max_tokens of the first engine call of a request with no max_tokens."""
    engine = ScriptedEngine(search_then("<answer> Paris </answer>", plain="hi"))
    async with serve(engine, FakeBackend(name="local"), **settings) as client:
        r = await client.post(URL, json=ask(search_mode=mode))
    assert r.status_code == 200, r.text
    return engine.calls[0].options.max_tokens


@pytest.mark.parametrize("mode", ["self", "real", "entropy"])
async def test_the_agent_modes_default_budget_bounds_a_trajectory(mode: str) -> None:
    assert await _first_budget(mode) == 1024  # agent.default_max_tokens, not plain chat's 4,096
    assert await _first_budget(mode, agent={"default_max_tokens": 40}, default_max_tokens=77) == 40
    engine = ScriptedEngine(search_then("<answer> Paris </answer>"))
    async with serve(engine, FakeBackend(name="local")) as client:
        await client.post(URL, json=ask(search_mode=mode, max_tokens=300))  # a request keeps its own
    assert engine.calls[0].options.max_tokens == 300


async def test_plain_chat_keeps_its_own_default() -> None:
    assert await _first_budget("off", agent={"default_max_tokens": 40}, default_max_tokens=77) == 77


@pytest.mark.parametrize("mode", ["self", "real", "entropy"])
async def test_a_repeating_trajectory_ends_early_with_its_own_end_reason(mode: str) -> None:
    engine = ScriptedEngine(LOOP)
    async with serve(engine, FakeBackend(name="local")) as client:
        r = await client.post(URL, json=ask(search_mode=mode))
    assert r.status_code == 200, r.text
    body = r.json()
    choice, trace = body["choices"][0], body["search_trace"]
    assert choice["finish_reason"] == "length" and trace["end_reason"] == "repetition"
    assert "repeated" in trace["detail"]
    assert choice["message"]["content"] is None
    assert "stop_reason" not in choice  # agent modes say it in the trace
    assert body["usage"]["completion_tokens"] == STOPPED_AFTER  # not the 1,024 of the budget
    assert trace["turns"][-1]["stopped_by"] == "repetition_detected"
    assert engine.calls[0].options.repetition == DEFAULT_STOP


async def test_a_repeating_plain_chat_ends_early_with_vllms_stop_reason() -> None:
    engine = ScriptedEngine(LOOP)
    async with serve(engine) as client:
        whole = await client.post(URL, json=ask(search_mode="off"))
        streamed = await client.post(URL, json=ask(search_mode="off", stream=True))
        stopped = ask(search_mode="off", max_tokens=50, stop=["occupation of the"])
        normal = await client.post(URL, json=stopped)
    choice = whole.json()["choices"][0]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("length", "repetition_detected")
    assert whole.json()["usage"]["completion_tokens"] == STOPPED_AFTER
    assert "search_trace" not in whole.json() or whole.json()["search_trace"] is None
    chunks = [json.loads(p) for p in sse_payloads(streamed.text) if p != "[DONE]"]
    finishing = [c["choices"][0] for c in chunks if c["choices"]][-1]
    assert (finishing["finish_reason"], finishing["stop_reason"]) == ("length", "repetition_detected")
    # a stop string is the stop reason, as vLLM says it; no stop reason, no key
    assert normal.json()["choices"][0]["stop_reason"] == "occupation of the"


async def test_a_request_or_the_server_may_change_or_turn_off_the_stop() -> None:
    engine = ScriptedEngine(LOOP)
    off = {"max_pattern_size": 0}
    async with serve(engine) as client:
        kept = await client.post(URL, json=ask(search_mode="self", repetition_detection=off, max_tokens=200))
        own = {"max_pattern_size": 3, "min_pattern_size": 3, "min_count": 2}
        tighter = await client.post(URL, json=ask(search_mode="off", repetition_detection=own))
        bad = await client.post(URL, json=ask(repetition_detection={"max_pattern_size": 4, "min_count": 1}))
    assert kept.json()["search_trace"]["end_reason"] == "token_budget"
    assert kept.json()["usage"]["completion_tokens"] == 200
    assert tighter.json()["usage"]["completion_tokens"] == 6 + 3 * 2
    assert assert_error(bad, 400)["param"] == "repetition_detection"
    async with serve(engine, repetition={"max_pattern_size": 0}) as client:
        r = await client.post(URL, json=ask(search_mode="off", max_tokens=100))
    assert r.json()["choices"][0]["finish_reason"] == "length"
    assert r.json()["usage"]["completion_tokens"] == 100 and engine.calls[-1].options.repetition is None


async def test_text_completions_have_no_stop_unless_asked_as_vllms() -> None:
    engine = ScriptedEngine(LOOP)
    body = {"model": "smollm2-135m-instruct", "prompt": "Say it", "max_tokens": 100}
    async with serve(engine) as client:
        plain = (await client.post("/v1/completions", json=body)).json()["choices"][0]
        rule = {"max_pattern_size": 8, "min_count": 4}
        asked = (await client.post("/v1/completions", json={**body, "repetition_detection": rule})).json()
    assert plain["finish_reason"] == "length" and plain["stop_reason"] is None
    choice = asked["choices"][0]
    assert (choice["finish_reason"], choice["stop_reason"]) == ("length", "repetition_detected")
    assert asked["usage"]["completion_tokens"] == 6 + 3 * 4


def _vllms_check() -> Callable[[list[int], SimpleNamespace], bool]:
    """``check_sequence_repetition`` as the installed vLLM has it, read from its source (importing
    vllm would import torch: half a minute in the fast suite)."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:
        pytest.skip("vllm is not installed")
    source = (Path(spec.origin).parent / "v1" / "core" / "sched" / "utils.py").read_text()
    wanted = {"_has_repeating_pattern", "check_sequence_repetition"}
    functions = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    assert {f.name for f in functions} == wanted
    namespace: dict[str, object] = {"Sequence": Sequence, "RepetitionDetectionParams": object}
    exec(compile(ast.Module(body=functions, type_ignores=[]), "vllm-utils", "exec"), namespace)
    return namespace["check_sequence_repetition"]  # type: ignore[return-value]


def test_the_scripted_rule_is_vllms_rule() -> None:
    """The scripted engine's check against vLLM's own function, on random and looping sequences."""
    vllms = _vllms_check()
    rng = random.Random(22)
    found = 0
    for _ in range(5000):
        period = rng.randint(1, 6)
        pattern = [rng.randint(0, 3) for _ in range(period)]
        ids = [rng.randint(0, 3) for _ in range(rng.randint(0, 12))] + pattern * rng.randint(0, 9)
        ids += [rng.randint(0, 3) for _ in range(rng.randint(0, 2))]
        smallest = rng.randint(0, 4)
        stop = RepetitionStop(rng.randint(smallest, 8), rng.randint(2, 5), smallest)
        params = SimpleNamespace(
            max_pattern_size=stop.max_pattern, min_pattern_size=stop.min_pattern, min_count=stop.min_count
        )
        expected = vllms(ids, params)
        assert stop.found_in(ids) == expected, (ids, stop)
        found += expected
    assert 500 < found < 4500  # both outcomes were tried often
