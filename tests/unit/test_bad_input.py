"""Bad input gets OpenAI's error shape with the right status, never a 500."""

from __future__ import annotations

import pytest

from service.engine.scripted import ScriptedEngine
from tests.conftest import serve
from tests.helpers import ask, assert_error

BAD_BODIES = [
    ({"model": "smollm2-135m-instruct", "messages": []}, "messages"),
    ({"model": "smollm2-135m-instruct"}, "messages"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    (ask(max_tokens="5"), "max_tokens"),
    (ask(max_tokens=0), "max_tokens"),
    (ask(max_tokens=-3), "max_tokens"),
    (ask(temperature="hot"), "temperature"),
    (ask(temperature=3.5), "temperature"),
    (ask(top_p=0), "top_p"),
    (ask(n=0), "n"),
    (ask(stream="yes"), "stream"),
    (ask(top_logprobs=21, logprobs=True), "top_logprobs"),
    (ask(stop=[""]), "stop"),
    (ask(stop=[f"s{i}" for i in range(20)]), "stop"),
    (ask(seed=2**70), "seed"),
    ({"model": "smollm2-135m-instruct", "messages": "hello"}, "messages"),
    (
        {"model": "smollm2-135m-instruct", "messages": [{"role": "wizard", "content": "hi"}]},
        "messages[0].role",
    ),
    ({"model": "smollm2-135m-instruct", "messages": [{"content": "hi"}]}, "messages[0].role"),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES)
async def test_invalid_fields_are_400_naming_the_field(body: dict, param: str) -> None:
    async with serve() as client:
        r = await client.post("/v1/chat/completions", json=body)
    error = assert_error(r, 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] is not None and error["param"].startswith(param)


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"[]", b"\xff\xfe{}", b'{"model": "x", "messages": [' * 1, b"null"]
)
async def test_unparseable_bodies_are_400(raw: bytes) -> None:
    async with serve() as client:
        r = await client.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
    assert_error(r, 400)


async def test_deeply_nested_json_is_400() -> None:
    async with serve() as client:
        r = await client.post("/v1/chat/completions", content=b"[" * 100_000 + b"]" * 100_000)
    assert_error(r, 400)


async def test_context_limits() -> None:
    engine = ScriptedEngine("ok", context_length=64)
    async with serve(engine) as client:
        too_many = await client.post("/v1/chat/completions", json=ask(max_tokens=60))
        prompt_too_long = await client.post("/v1/chat/completions", json=ask(" ".join(["word"] * 100)))
    error = assert_error(too_many, 400)
    assert (error["code"], error["param"]) == ("context_length_exceeded", "max_tokens")
    assert "64" in error["message"]
    error = assert_error(prompt_too_long, 400)
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")


async def test_n_over_the_limit_and_top_logprobs_without_logprobs() -> None:
    async with serve(max_n=2) as client:
        n = await client.post("/v1/chat/completions", json=ask(n=3))
        top = await client.post("/v1/chat/completions", json=ask(top_logprobs=2))
    assert assert_error(n, 400)["param"] == "n"
    assert assert_error(top, 400)["param"] == "top_logprobs"


async def test_unknown_model_and_route_are_404() -> None:
    async with serve() as client:
        model = await client.post("/v1/chat/completions", json={**ask(), "model": "gpt-9"})
        card = await client.get("/v1/models/gpt-9")
        route = await client.get("/v1/nothing-here")
        method = await client.get("/v1/chat/completions")
    assert assert_error(model, 404)["code"] == "model_not_found"
    assert assert_error(card, 404)["code"] == "model_not_found"
    assert_error(route, 404)
    assert_error(method, 405)


async def test_body_over_the_limit_is_413() -> None:
    async with serve(max_body_bytes=2048) as client:
        r = await client.post("/v1/chat/completions", json=ask("x" * 5000))

        async def body():
            for part in (b'{"model": "m", "messages": [', b" " * 4096, b"]}"):
                yield part

        chunked = await client.post("/v1/chat/completions", content=body())
    assert assert_error(r, 413)["code"] == "request_too_large"
    assert_error(chunked, 413)


async def test_control_characters_and_lone_surrogates_never_500() -> None:
    async with serve() as client:
        control = await client.post("/v1/chat/completions", json=ask("a\x00b\x07c\u202e"))
        surrogate = await client.post(
            "/v1/chat/completions",
            content=b'{"model": "smollm2-135m-instruct", "messages": [{"role": "user", '
            b'"content": "\\ud800"}]}',
        )
    assert control.status_code == 200
    assert surrogate.status_code in (200, 400)


async def test_engine_failure_is_500_in_the_error_shape_and_the_next_request_works() -> None:
    engine = ScriptedEngine("one two three four", fail_after_tokens=2)
    async with serve(engine) as client:
        failed = await client.post("/v1/chat/completions", json=ask())
        engine.fail_after_tokens = None
        ok = await client.post("/v1/chat/completions", json=ask())
    assert assert_error(failed, 500)["code"] == "engine_error"
    assert ok.status_code == 200
    assert engine.num_unfinished_requests() == 0
