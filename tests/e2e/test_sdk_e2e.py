"""The SDK against the live server on the real engine."""

from __future__ import annotations

import pytest

from ssrl_client import AnswerDelta, Client, Done, ReasoningDelta, SearchStepEvent
from tests.e2e.launcher import RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

PREFILL = "<think> I should look this up. </think>\n<search> Who wrote Hamlet </search>"


def test_sdk_chat_and_stream_on_the_live_server(server: RunningServer) -> None:
    messages = [{"role": "user", "content": "Who wrote Hamlet?"}, {"role": "assistant", "content": PREFILL}]
    with Client(base_url=server.base_url, api_key=server.api_key) as client:
        plain = client.ask("What is the capital of France?", search_mode="off", max_tokens=16, temperature=0)
        assert plain.answer and plain.usage.completion_tokens <= 16
        result = client.chat(messages, search_mode="real", search={"top_k": 1}, max_tokens=300)
        [step, *_] = result.steps
        assert (step.source, step.backend, step.query) == ("real", "local", "Who wrote Hamlet")
        assert step.results[0].title == "Hamlet"
        with client.chat(
            messages, search_mode="real", search={"top_k": 1}, max_tokens=200, stream=True
        ) as stream:
            events = list(stream)
    assert isinstance(events[-1], Done) and events[-1].usage.completion_tokens > 0
    assert any(isinstance(e, SearchStepEvent) and e.step.source == "real" for e in events)
    trajectory = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert trajectory.startswith(PREFILL + "\n\n<information>\nDoc 1: Hamlet")
    assert all(isinstance(e, ReasoningDelta | SearchStepEvent | AnswerDelta | Done) for e in events)
