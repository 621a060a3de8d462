"""vLLM's ``min_tokens`` and ``ignore_eos`` (``vllm bench serve --ignore-eos`` sends the latter): they
reach the engine in plain chat and text completions, hold the end of text off as vLLM does (scripted
engine here; tests/e2e/test_engine_death_e2e.py relies on them on the real model), and are a 400 where
they cannot be honoured."""

from __future__ import annotations

from typing import Any

import pytest

from service.engine.base import SamplingOptions
from service.engine.scripted import ScriptedEngine
from tests.conftest import serve
from tests.helpers import MODEL, assert_error, chat, count_tokens, sse_json

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
REPLY = "Paris is the capital. It is in France."


def completion(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "The capital of France is", **extra}


async def test_ignore_eos_generates_to_max_tokens_and_finishes_on_length() -> None:
    engine = ScriptedEngine(REPLY)
    async with serve(engine) as client:
        plain = (await client.post(CHAT, json=chat(max_tokens=40))).json()
        held = (await client.post(CHAT, json=chat(max_tokens=40, ignore_eos=True))).json()
        streamed = await client.post(CHAT, json=chat(max_tokens=40, ignore_eos=True, stream=True))
    assert plain["choices"][0]["finish_reason"] == "stop"
    assert plain["usage"]["completion_tokens"] == count_tokens(REPLY)
    assert held["choices"][0]["finish_reason"] == "length"
    assert held["usage"]["completion_tokens"] == 40
    assert held["choices"][0]["message"]["content"].startswith(REPLY)
    frames = [f for f in sse_json(streamed.text) if f.get("choices")]
    assert frames[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(f["choices"][0]["delta"].get("content") or "" for f in frames)
    assert text == held["choices"][0]["message"]["content"]
    assert [c.options.ignore_eos for c in engine.calls] == [False, True, True]


async def test_min_tokens_holds_off_the_end_and_stop_strings() -> None:
    engine = ScriptedEngine(REPLY)
    async with serve(engine) as client:
        short = await client.post(COMPLETIONS, json=completion(max_tokens=30, min_tokens=12))
        stopped = await client.post(COMPLETIONS, json=completion(max_tokens=30, stop=["capital"]))
        late_stop = await client.post(
            COMPLETIONS, json=completion(max_tokens=30, stop=["capital"], min_tokens=4)
        )
    [choice] = short.json()["choices"]
    assert short.json()["usage"]["completion_tokens"] == 12 and choice["finish_reason"] == "stop"
    assert choice["text"].startswith(REPLY)
    assert stopped.json()["choices"][0]["text"] == "Paris is the "
    # "capital" is the 4th token: a stop string inside the first min_tokens does not end the text
    late = late_stop.json()["choices"][0]
    assert late["text"].startswith("Paris is the capital.") and late["finish_reason"] == "stop"
    assert engine.calls[0].options.min_tokens == 12


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (CHAT, chat(max_tokens=8, min_tokens=9)),
        (COMPLETIONS, completion(max_tokens=8, min_tokens=9)),
        (COMPLETIONS, completion(min_tokens=17)),  # the default max_tokens is 16
        (CHAT, chat(min_tokens=-1)),
        (CHAT, chat(min_tokens="3")),
    ],
    ids=["chat_over_max", "completions_over_max", "completions_over_default", "negative", "string"],
)
async def test_bad_min_tokens_is_400(url: str, body: dict[str, Any]) -> None:
    engine = ScriptedEngine(REPLY)
    async with serve(engine) as client:
        r = await client.post(url, json=body)
    assert_error(r, 400, param="min_tokens")
    assert engine.calls == []


@pytest.mark.parametrize("field", [{"min_tokens": 4}, {"ignore_eos": True}])
@pytest.mark.parametrize("mode", ["self", "real", "entropy", "client"])
async def test_agent_modes_refuse_them_saying_why(mode: str, field: dict[str, Any]) -> None:
    engine = ScriptedEngine(REPLY)
    async with serve(engine) as client:
        r = await client.post(CHAT, json=chat(search_mode=mode, max_tokens=64, **field))
    [param] = field
    error = assert_error(r, 400, param=param)
    assert "search_mode 'off'" in error["message"]
    assert engine.calls == []


async def test_null_means_the_default() -> None:
    engine = ScriptedEngine(REPLY)
    async with serve(engine) as client:
        r = await client.post(CHAT, json=chat(max_tokens=40, min_tokens=None, ignore_eos=None))
    assert r.status_code == 200, r.text
    assert engine.calls[0].options == SamplingOptions(
        max_tokens=40, stop=(), repetition=engine.calls[0].options.repetition
    )
