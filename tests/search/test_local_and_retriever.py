"""The local BM25 backend on the embedded corpus, the retrieval server, and the retriever backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from service.search.base import SearchError
from service.search.corpus import CorpusError, load_jsonl, parse_contents
from service.search.local import LocalBackend, LocalIndex
from service.search.retriever import RetrieverBackend
from service.search.retriever_server import RetrieverSettings, create_retriever_app
from tests.search.conftest import Recorder


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("Who wrote Hamlet?", "Hamlet"),
        ("Which physicist developed the theory of relativity?", "Albert Einstein"),
        ("What is photosynthesis?", "Photosynthesis"),
    ],
)
async def test_a_known_question_finds_its_article_in_the_top_3(
    wiki_index, question: str, article: str
) -> None:
    index, _ = wiki_index
    docs = await LocalBackend(index).search(question, 3)
    assert article in [d.title for d in docs]
    assert all(d.url.startswith("https://en.wikipedia.org/wiki/") and d.score > 0 for d in docs)
    assert len(index.docs) == 10_033


async def test_the_embedded_corpus_index_is_reused_from_disk(wiki_index) -> None:
    first, index_dir = wiki_index
    again = LocalIndex.load(None, index_dir)
    assert first.built is True and again.built is False
    assert [d.title for d in again.search("Who wrote Hamlet?", 3)] == [
        d.title for d in first.search("Who wrote Hamlet?", 3)
    ]


async def test_no_matching_words_gives_no_results(wiki_index) -> None:
    assert await LocalBackend(wiki_index[0]).search("zzqx qqzv", 3) == []


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_search_r1_and_plain_jsonl_forms_load(tmp_path: Path) -> None:
    r1 = write_jsonl(tmp_path / "r1.jsonl", [{"id": "0", "contents": '"Eiffel Tower"\nA tower in Paris.'}])
    plain = write_jsonl(
        tmp_path / "plain.jsonl", [{"title": "Louvre", "text": "A museum.", "url": "https://l"}]
    )
    assert [(d.title, d.text) for d in load_jsonl(r1)] == [("Eiffel Tower", "A tower in Paris.")]
    assert [(d.title, d.url) for d in load_jsonl(plain)] == [("Louvre", "https://l")]
    assert parse_contents('"Title"\nline one\nline two') == ("Title", "line one\nline two")


def test_bad_lines_are_reported_with_their_numbers_and_skipped(tmp_path: Path, caplog) -> None:
    corpus = write_jsonl(
        tmp_path / "c.jsonl",
        [{"title": "A", "text": "alpha"}, "{broken", {"title": "no text"}, {"title": "B", "text": "beta"}],
    )
    docs = load_jsonl(corpus)
    assert [d.title for d in docs] == ["A", "B"]
    assert "skipped 2 bad line(s): 2, 3" in caplog.text
    with pytest.raises(CorpusError):
        load_jsonl(write_jsonl(tmp_path / "empty.jsonl", ["{bad"]))


async def test_local_backend_over_a_custom_corpus(tmp_path: Path) -> None:
    corpus = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {
                "id": "1",
                "contents": '"Eiffel Tower"\nThe Eiffel Tower is a wrought-iron lattice tower in Paris.',
            },
            {"id": "2", "contents": '"Colosseum"\nThe Colosseum is an amphitheatre in Rome.'},
        ],
    )
    backend = await LocalBackend.create(corpus, tmp_path / "idx")
    docs = await backend.search("iron tower in Paris", 1)
    assert [d.title for d in docs] == ["Eiffel Tower"]


@pytest.fixture()
async def retrieval_server(wiki_index):
    app = create_retriever_app(RetrieverSettings(), index=wiki_index[0])
    async with app.router.lifespan_context(app):
        yield app


async def test_retrieval_server_speaks_the_search_r1_api(retrieval_server) -> None:
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
        too_many = await client.post("/retrieve", json={"queries": ["q"], "topk": 100_000})
        health = (await client.get("/health")).json()
    assert len(scored["result"]) == 2 and len(scored["result"][0]) == 2
    hit = scored["result"][0][0]
    assert hit["document"]["contents"].startswith('"') and isinstance(hit["score"], float)
    assert set(plain["result"][0][0]) == {"id", "contents"}
    assert too_many.status_code == 400
    assert health == {"status": "ok", "documents": 10_033}


async def test_retriever_backend_against_the_retrieval_server(retrieval_server) -> None:
    calls = []
    inner = httpx.ASGITransport(app=retrieval_server)

    async def count(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        return await inner.handle_async_request(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(count)) as client:
        backend = RetrieverBackend(client, "http://r", 5.0, batch_window_ms=20)
        questions = ["Who wrote Hamlet?", "What is photosynthesis?", "theory of relativity physicist"]
        answers = await asyncio.gather(*(backend.search(q, 3) for q in questions))
    assert len(calls) == 1 and calls[0]["queries"] == questions  # one batched call
    assert "Hamlet" in [d.title for d in answers[0]]
    assert "Photosynthesis" in [d.title for d in answers[1]]
    assert all(d.score is not None for docs in answers for d in docs)


async def test_retriever_backend_batches_and_fans_out_errors() -> None:
    recorder = Recorder(httpx.Response(503))
    backend = RetrieverBackend(recorder.client(), "http://r", 5.0, batch_window_ms=10)
    results = await asyncio.gather(*(backend.search(f"q{i}", 3) for i in range(5)), return_exceptions=True)
    assert len(recorder.requests) == 1
    assert all(isinstance(r, SearchError) and r.kind == "http_status" for r in results)


async def test_retriever_backend_rejects_a_wrong_shape() -> None:
    recorder = Recorder(httpx.Response(200, json={"result": [[{"document": {"id": "1"}}]]}))
    with pytest.raises(SearchError) as caught:
        await RetrieverBackend(recorder.client(), "http://r", 5.0).search("q", 3)
    assert caught.value.kind == "bad_response"


async def test_retriever_backend_flushes_at_max_batch() -> None:
    recorder = Recorder(httpx.Response(200, json={"result": [[], []]}))
    backend = RetrieverBackend(recorder.client(), "http://r", 5.0, batch_window_ms=10_000, max_batch=2)
    assert await asyncio.wait_for(asyncio.gather(backend.search("a", 3), backend.search("b", 3)), 2) == [
        [],
        [],
    ]
