"""Plain chat and the agent answer in one shape: OpenAI's keys are always there (``"logprobs": null``
included); the service's own keys appear only where they carry something."""

from __future__ import annotations

import json

import pytest

from service.engine.scripted import ScriptedEngine
from tests.conftest import serve
from tests.helpers import ask, sse_payloads

REAL = ["<search> capital of France </search>", "<answer> Paris </answer>"]
CHOICE_KEYS = {"index", "delta", "logprobs", "finish_reason"}
CHUNK_KEYS = {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}


@pytest.mark.parametrize("mode", ["off", "real"])
async def test_stream_chunks_keep_openai_keys_on_both_paths(mode: str) -> None:
    async with serve(ScriptedEngine(REAL)) as client:
        r = await client.post("/v1/chat/completions", json=ask(search_mode=mode, stream=True))
    events = sse_payloads(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) >= 2
    for chunk in chunks:
        assert CHUNK_KEYS <= set(chunk) <= CHUNK_KEYS | {"search_step", "search_trace"}
        for choice in chunk["choices"]:
            assert set(choice) == CHOICE_KEYS and choice["logprobs"] is None
            assert {"role", "content"} <= set(choice["delta"])
            assert choice["delta"].get("reasoning_content", "x") is not None  # absent, never null
        assert chunk.get("search_step", "x") is not None and chunk.get("search_trace", "x") is not None
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert ("search_trace" in chunks[-1]) == (mode != "off")


@pytest.mark.parametrize("mode", ["off", "real"])
async def test_whole_completions_keep_openai_keys_on_both_paths(mode: str) -> None:
    async with serve(ScriptedEngine(REAL)) as client:
        body = (await client.post("/v1/chat/completions", json=ask(search_mode=mode))).json()
    [choice] = body["choices"]
    own = {"search_trace"} if mode != "off" else set()  # each choice's own trace, agent modes only
    assert set(choice) == {"index", "message", "logprobs", "finish_reason"} | own
    assert choice["logprobs"] is None
    assert {"role", "content", "reasoning_content"} <= set(choice["message"])
    assert "search_trace" in body and (body["search_trace"] is None) == (mode == "off")
    if mode != "off":  # the top-level trace is choice 0's, as it was before choices had their own
        assert choice["search_trace"] == body["search_trace"]


async def test_the_search_trace_is_typed_in_the_openapi_schema() -> None:
    async with serve(ScriptedEngine(REAL)) as client:
        schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    trace = components["ChatCompletion"]["properties"]["search_trace"]
    assert {"$ref": "#/components/schemas/SearchTrace"} in trace["anyOf"]
    assert {"mode", "steps", "turns", "end_reason"} <= set(components["SearchTrace"]["properties"])
    assert "SearchStep" in components and "DocOut" in components


def test_modes_and_backend_names_are_written_once_in_protocol() -> None:
    import subprocess
    import sys

    from service.protocol import BACKEND_NAMES, SEARCH_MODES, ChatCompletionRequest
    from service.search.registry import BACKENDS
    from service.settings import Settings

    assert SEARCH_MODES == ("self", "real", "entropy", "client", "off")
    request_modes = ChatCompletionRequest.model_json_schema()["properties"]["search_mode"]["anyOf"][0]
    assert tuple(request_modes["enum"]) == SEARCH_MODES
    settings_modes = Settings.model_json_schema()["properties"]["search_mode"]["anyOf"][0]
    assert tuple(settings_modes["enum"]) == SEARCH_MODES
    assert tuple(BACKENDS) == BACKEND_NAMES
    # the search settings validate backend names without importing the registry (no import cycle)
    code = "import sys, service.search.settings; print('service.search.registry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
