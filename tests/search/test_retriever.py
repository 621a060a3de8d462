"""The retrieval server (Search-R1's API over the local index) and the retriever backend batching."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from service.search.base import SearchError
from service.search.corpus import wikipedia_url
from service.search.local import LocalIndex
from service.search.metrics import SearchMetrics
from service.search.resilient import ResilientBackend
from service.search.retriever import RetrieverBackend, parse_hit
from service.search.retriever_server import RetrieverSettings, create_retriever_app, main
from tests.search.conftest import Recorder, sample

SCORED = {
    "result": [
        [
            {"document": {"id": "8", "contents": '"Paris"\nParis is the capital of France.'}, "score": 12.5},
            {"document": {"id": "9", "contents": '"France"\nA country.'}, "score": 3.0},
        ],
        [],
    ]
}


@pytest.fixture()
async def retrieval_server(wiki_index: LocalIndex) -> AsyncIterator[FastAPI]:
    app = create_retriever_app(RetrieverSettings(), index=wiki_index)
    async with app.router.lifespan_context(app):
        yield app


def test_parse_hit_with_and_without_scores() -> None:
    with_score = parse_hit(SCORED["result"][0][0])
    assert (with_score.title, with_score.text, with_score.score) == (
        "Paris",
        "Paris is the capital of France.",
        12.5,
    )
    plain = parse_hit({"id": "1", "contents": '"Louvre"\nA museum.'})
    assert (plain.title, plain.text, plain.score) == ("Louvre", "A museum.", None)


async def test_retrieval_server_speaks_the_search_r1_api(retrieval_server: FastAPI) -> None:
    transport = httpx.ASGITransport(app=retrieval_server)
    async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        scored = (
            await client.post(
                "/retrieve",
                json={"queries": ["Who wrote Hamlet?", "photosynthesis"], "topk": 2, "return_scores": True},
            )
        ).json()
        plain = (
            await client.post("/retrieve", json={"queries": ["Hamlet"], "topk": 1, "return_scores": False})
        ).json()
        too_big = await client.post("/retrieve", json={"queries": ["q"], "topk": 100_000})
        too_many = await client.post("/retrieve", json={"queries": ["q"] * 513})
        no_queries = await client.post("/retrieve", json={"queries": []})
        health = (await client.get("/health")).json()
    assert len(scored["result"]) == 2 and len(scored["result"][0]) == 2
    hit = scored["result"][0][0]
    assert hit["document"]["contents"].startswith('"Hamlet"\n') and isinstance(hit["score"], float)
    assert hit["document"]["id"].isdigit()
    # beside Search-R1's keys, each embedded article's Wikipedia URL (results keep their source)
    assert set(plain["result"][0][0]) == {"id", "contents", "url"}
    assert plain["result"][0][0]["url"] == "https://en.wikipedia.org/wiki/Hamlet"
    assert hit["document"]["url"] == "https://en.wikipedia.org/wiki/Hamlet"
    assert (too_big.status_code, too_many.status_code, no_queries.status_code) == (400, 400, 422)
    assert health == {"status": "ok", "documents": 10_033}


async def test_the_server_loads_its_index_at_start_up(tmp_path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "doc-7", "contents": '"Louvre"\nA museum in Paris.'}) + "\n")
    app = create_retriever_app(RetrieverSettings(corpus=corpus, index_dir=tmp_path / "idx"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        answer = (await client.post("/retrieve", json={"queries": ["museum"], "topk": 3})).json()
    [[hit]] = answer["result"]
    assert hit["document"] == {"id": "doc-7", "contents": '"Louvre"\nA museum in Paris.'}
    assert hit["score"] > 0


async def test_retriever_backend_against_the_retrieval_server(retrieval_server: FastAPI) -> None:
    calls = []
    inner = httpx.ASGITransport(app=retrieval_server)

    async def count(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        return await inner.handle_async_request(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(count)) as client:
        backend = RetrieverBackend(client, "http://r", 5.0, batch_window_ms=20)
        questions = ["Who wrote Hamlet?", "What is photosynthesis?", "What is the capital of France?"]
        answers = await asyncio.gather(*(backend.search(q, 3) for q in questions))
    assert len(calls) == 1 and calls[0] == {"queries": questions, "topk": 3, "return_scores": True}
    assert "Hamlet" in [d.title for d in answers[0]]
    assert "Photosynthesis" in [d.title for d in answers[1]]
    assert "Paris" in [d.title for d in answers[2]]
    assert all(d.score is not None for docs in answers for d in docs)
    # the URL travels through the server and the backend: the agent can cite it
    assert all(d.url == wikipedia_url(d.title) for docs in answers for d in docs)


async def test_n_concurrent_queries_make_exactly_one_post() -> None:
    recorder = Recorder(httpx.Response(200, json={"result": [SCORED["result"][0]] * 10}))
    backend = RetrieverBackend(recorder.client(), "http://r", 5.0, batch_window_ms=10)
    answers = await asyncio.gather(*(backend.search(f"question {i}", 2) for i in range(10)))
    assert len(recorder.requests) == 1 and backend.batches_sent == 1
    assert json.loads(recorder.requests[0].content)["queries"] == [f"question {i}" for i in range(10)]
    assert all([d.title for d in docs] == ["Paris", "France"] for docs in answers)


async def test_each_caller_gets_its_own_list() -> None:
    recorder = Recorder(httpx.Response(200, json=SCORED))
    backend = RetrieverBackend(recorder.client(), "http://r", 5.0, batch_window_ms=10)
    first, second = await asyncio.gather(backend.search("capital", 3), backend.search("nothing", 3))
    assert [d.title for d in first] == ["Paris", "France"] and second == []


async def test_different_top_k_go_in_different_batches() -> None:
    recorder = Recorder(httpx.Response(200, json={"result": [[]]}))
    backend = RetrieverBackend(recorder.client(), "http://r", 5.0, batch_window_ms=10)
    await asyncio.gather(backend.search("a", 3), backend.search("b", 5))
    assert sorted(json.loads(r.content)["topk"] for r in recorder.requests) == [3, 5]


async def test_retriever_backend_batches_and_fans_out_errors() -> None:
    recorder = Recorder(httpx.Response(503))
    backend = RetrieverBackend(recorder.client(), "http://r", 5.0, batch_window_ms=10)
    results = await asyncio.gather(*(backend.search(f"q{i}", 3) for i in range(5)), return_exceptions=True)
    assert len(recorder.requests) == 1
    assert all(isinstance(r, SearchError) and r.kind == "http_status" for r in results)


@pytest.mark.parametrize(
    "payload",
    [
        {"result": [[{"document": {"id": "1"}}]]},  # no contents
        {"result": [[], []]},  # two lists for one query
        {"result": ["not a list"]},
        {"answer": []},
    ],
)
async def test_retriever_backend_rejects_a_wrong_shape(payload) -> None:
    recorder = Recorder(httpx.Response(200, json=payload))
    with pytest.raises(SearchError) as caught:
        await RetrieverBackend(recorder.client(), "http://r", 5.0).search("q", 3)
    assert caught.value.kind == "bad_response"


async def test_retriever_backend_flushes_at_max_batch() -> None:
    recorder = Recorder(httpx.Response(200, json={"result": [[], []]}))
    backend = RetrieverBackend(recorder.client(), "http://r", 5.0, batch_window_ms=10_000, max_batch=2)
    answers = await asyncio.wait_for(asyncio.gather(backend.search("a", 3), backend.search("b", 3)), 2)
    assert answers == [[], []]


async def test_aclose_fails_the_waiting_callers() -> None:
    backend = RetrieverBackend(Recorder().client(), "http://r", 5.0, batch_window_ms=10_000)
    waiting = asyncio.ensure_future(backend.search("q", 3))
    await asyncio.sleep(0)
    await backend.aclose()
    with pytest.raises(SearchError, match="closed"):
        await asyncio.wait_for(waiting, 1)


async def test_retries_through_the_wrapper_rebatch(metrics: SearchMetrics) -> None:
    answer = {"result": SCORED["result"][:1]}
    recorder = Recorder(httpx.Response(503, headers={"Retry-After": "0"}), httpx.Response(200, json=answer))
    backend = ResilientBackend(
        RetrieverBackend(recorder.client(), "http://r", 5.0, batch_window_ms=5), metrics, max_retry_wait=0.01
    )
    docs = await backend.search("capital", 3)
    assert [d.title for d in docs] == ["Paris", "France"] and len(recorder.requests) == 2
    assert sample(metrics, "ssrl_search_errors_total", backend="retriever", kind="http_status") == 1


def test_the_cli_is_generated_from_the_settings(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--corpus", "--index-dir", "--log-level"):
        assert flag in out
