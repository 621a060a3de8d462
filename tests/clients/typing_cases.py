"""Checked by mypy (tests/test_mypy.py), never run: what each call returns, as openai-python types it."""

from __future__ import annotations

from typing import assert_type

from ssrl_client import AsyncClient, AsyncStream, ChatResult, Client, Stream

MESSAGES = [{"role": "user", "content": "Hi"}]


def sync_calls(client: Client, flag: bool) -> None:
    assert_type(client.chat(MESSAGES), ChatResult)
    assert_type(client.chat(MESSAGES, stream=False), ChatResult)
    assert_type(client.chat(MESSAGES, stream=True), Stream)
    assert_type(client.chat(MESSAGES, stream=flag), ChatResult | Stream)
    assert_type(client.ask("q", search_mode="real", top_k=2), ChatResult)
    assert_type(client.ask("q", stream=True), Stream)
    assert_type(client.ask("q", search=lambda query: [{"title": "t", "text": query}]), ChatResult)
    assert_type(client.chat(MESSAGES, search=lambda query: "results"), ChatResult)
    result = client.ask("q")
    assert_type(result.end_reason, str | None)
    assert_type(result.finish_reason, str | None)


async def async_calls(client: AsyncClient, flag: bool) -> None:
    assert_type(await client.chat(MESSAGES), ChatResult)
    assert_type(await client.chat(MESSAGES, stream=True), AsyncStream)
    assert_type(await client.chat(MESSAGES, stream=flag), ChatResult | AsyncStream)
    assert_type(await client.ask("q", max_turns=1), ChatResult)
    assert_type(await client.ask("q", stream=True), AsyncStream)

    async def search(query: str) -> str:
        return query

    assert_type(await client.ask("q", search=search), ChatResult)
