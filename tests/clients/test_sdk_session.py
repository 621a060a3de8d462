"""The SDK's routing key: one X-Session-ID for every request of a conversation (the header
vllm-router's consistent_hash policy reads first), different conversations apart."""

from __future__ import annotations

import httpx

from ssrl_client import SESSION_HEADER, AsyncClient, Client, session_key
from tests.clients.test_sdk_transport import COMPLETION, Script, client, error


def keys(script: Script) -> list[str]:
    return [r.headers[SESSION_HEADER] for r in script.requests]


def test_every_turn_of_a_conversation_carries_the_same_key() -> None:
    script = Script(httpx.Response(200, json=COMPLETION))
    sdk = client(script)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who wrote Hamlet?"}]
    sdk.chat(messages)
    messages += [{"role": "assistant", "content": "Shakespeare"}, {"role": "user", "content": "When?"}]
    sdk.chat(messages)
    sdk.chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who wrote Faust?"}])
    first, second, other = keys(script)
    assert first == second != other
    assert first == session_key(messages, "m") and first.startswith("conv-")
    # the same opening on another model is another conversation
    assert session_key(messages, "other-model") != first


def test_an_ask_keeps_its_key_across_retries_and_an_explicit_key_wins() -> None:
    script = Script(error(503, headers={"Retry-After": "0"}), httpx.Response(200, json=COMPLETION))
    sdk = client(script)
    assert sdk.ask("Who wrote Hamlet?").answer == "Paris"
    retried = keys(script)
    assert len(retried) == 2 and retried[0] == retried[1]
    sdk.ask("Who wrote Hamlet?", session_id="trajectory-7")
    sdk.chat([{"role": "user", "content": "x"}], session_id="trajectory-7")
    assert keys(script)[2:] == ["trajectory-7", "trajectory-7"]
    # the key is a header only: the body stays what the server's schema knows
    assert b"session" not in script.requests[-1].content


async def test_async_client_sends_the_same_key() -> None:
    script = Script(*(httpx.Response(200, json=COMPLETION) for _ in range(3)))
    sdk = AsyncClient(
        base_url="http://svc", model="m", http_client=httpx.AsyncClient(transport=httpx.MockTransport(script))
    )
    await sdk.ask("Who wrote Hamlet?")
    await sdk.ask("Who wrote Hamlet?")
    with Client(
        base_url="http://svc", model="m", http_client=httpx.Client(transport=httpx.MockTransport(script))
    ) as sync:
        sync.ask("Who wrote Hamlet?")
    assert len(set(keys(script))) == 1
    await sdk.close()


def _tool_call(n: int) -> dict:
    function = {"name": "search", "arguments": '{"query": "q"}'}
    call = {"id": f"call-{n}", "type": "function", "function": function}
    message = {"role": "assistant", "content": "<search> q </search>", "tool_calls": [call]}
    return {**COMPLETION, "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}


def test_the_rounds_of_a_client_mode_ask_share_one_key() -> None:
    """A client-mode trajectory spans one request per search: all of them route together."""
    script = Script(
        httpx.Response(200, json=_tool_call(1)),
        httpx.Response(200, json=_tool_call(2)),
        httpx.Response(200, json=COMPLETION),
    )
    sdk = client(script)
    assert sdk.ask("Who wrote Hamlet?", search=lambda q: "Hamlet is by Shakespeare.").answer == "Paris"
    rounds = keys(script)
    assert len(rounds) == 3 and len(set(rounds)) == 1
