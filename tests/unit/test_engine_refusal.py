"""An engine that refuses a request's input (vLLM's structured outputs cannot compile a schema, an
option it rejects) is the caller's fault: a 400 ``invalid_request_error`` in every search mode, the
agent modes included, whole or streamed (where it is the error frame, the headers having gone)."""

from __future__ import annotations

import pytest

from service.engine.scripted import ScriptedEngine
from service.protocol import SEARCH_MODES
from tests.conftest import Serve
from tests.helpers import ask, assert_error, assert_error_body, sse_json

URL = "/v1/chat/completions"
REFUSAL = "an option this engine rejects"


@pytest.mark.parametrize("mode", SEARCH_MODES)
async def test_refused_input_is_400_in_every_mode(serve: Serve, mode: str) -> None:
    engine = ScriptedEngine(refuse_input=REFUSAL)
    async with serve(engine) as client:
        whole = await client.post(URL, json=ask(search_mode=mode))
        streamed = await client.post(URL, json=ask(search_mode=mode, stream=True))
        metrics = (await client.get("/metrics")).text
    error = assert_error(whole, 400, type_="invalid_request_error", code="invalid_value")
    assert error["message"] == f"the engine refused the request: {REFUSAL}"
    assert streamed.status_code == 200  # the stream had started: the error is its last frame
    last = sse_json(streamed.text)[-1]
    frame = assert_error_body(last, type_="invalid_request_error", code="invalid_value")
    assert frame["message"] == error["message"]
    assert 'status="500"' not in metrics
    assert engine.num_unfinished_requests() == 0


def test_every_mode_is_covered() -> None:
    assert set(SEARCH_MODES) == {"off", "self", "real", "entropy", "client"}
