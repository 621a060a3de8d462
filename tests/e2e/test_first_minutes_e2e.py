"""What a new user meets first, on the real engine and the embedded model (issue 22): a greeting in
the agent mode ends in a few dozen tokens whatever the model makes of it (the default trajectory
budget and vLLM's repetition stop bound it), a forced loop ends early with its own reason,
``max_tokens`` past the context is a 400 in every mode, and the start logs no warning per weight."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from service.protocol import SEARCH_MODES
from tests.e2e.conftest import MODEL
from tests.e2e.launcher import RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

LOOP = " the occupation of" * 8


def _post(server: RunningServer, body: dict[str, object]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=300)


def test_a_greeting_in_the_agent_mode_ends_quickly(server: RunningServer) -> None:
    """No max_tokens, as a new user sends it: it ends (an answer, or the repetition stop when the model
    loops, as the first adapter did with "the occupation of the occupation of ...") long before the
    1,024-token budget, let alone the 8,045 tokens the context leaves."""
    started = time.monotonic()
    r = _post(
        server, {"model": MODEL, "search_mode": "real", "messages": [{"role": "user", "content": "hi"}]}
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text
    body = r.json()
    trace = body["search_trace"]
    assert trace["end_reason"] in {"answer", "repetition", "no_answer", "malformed_action"}, trace
    assert body["usage"]["completion_tokens"] < 400, body["usage"]
    tokens = body["usage"]["completion_tokens"]
    print(f"'hi' in real mode: {elapsed:.1f} s, {tokens} tokens, {trace['end_reason']}")


def test_a_forced_loop_ends_early_with_its_own_reason(server: RunningServer) -> None:
    """A trajectory prefilled with a loop: greedy decoding carries it on, and vLLM's repetition stop
    ends the turn after the pattern's 8th repeat in the generated text, not at the budget."""
    prefill = "<think> I am not sure about" + LOOP
    r = _post(
        server,
        {
            "model": MODEL,
            "search_mode": "self",
            "max_tokens": 1000,
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": prefill}],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    choice, trace = body["choices"][0], body["search_trace"]
    assert (choice["finish_reason"], trace["end_reason"]) == ("length", "repetition"), body
    assert trace["turns"][-1]["stopped_by"] == "repetition_detected"
    assert body["usage"]["completion_tokens"] < 100  # of the 1,000 asked


def test_text_completions_stop_a_loop_when_asked_as_vllm_does(client: openai.OpenAI) -> None:
    """The same stop through vLLM's own request field, on the plain /v1/completions route."""
    rule = {"max_pattern_size": 16, "min_pattern_size": 3, "min_count": 8}
    looping = client.completions.create(
        model=MODEL,
        prompt="I am not sure about" + LOOP,
        max_tokens=400,
        temperature=0,
        extra_body={"repetition_detection": rule},
    )
    choice = looping.choices[0]
    assert choice.finish_reason == "length" and choice.model_extra["stop_reason"] == "repetition_detected"
    assert looping.usage.completion_tokens < 100


@pytest.mark.parametrize("mode", SEARCH_MODES)
def test_max_tokens_past_the_context_is_a_400_in_every_mode(server: RunningServer, mode: str) -> None:
    body: dict[str, object] = {
        "model": MODEL,
        "search_mode": mode,
        "max_tokens": 1_000_000_000,
        "messages": [{"role": "user", "content": "hi"}],
    }
    if mode == "client":
        body["tools"] = [{"type": "function", "function": {"name": "search"}}]
    r = _post(server, body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "max_tokens")
    assert "2048" in error["message"]  # the test server's context


def test_the_start_logs_no_warning_per_weight(server: RunningServer) -> None:
    """The merged model is saved in the dtype vLLM serves it in: no "Attempted to load weight ... with
    dtype torch.float32 into parameter with dtype torch.bfloat16" line (122 at every start before)."""
    log = server.log_path.read_text(errors="replace")
    assert "vLLM engine ready" in log
    assert "Attempted to load weight" not in log
