"""The answer's sources: the citation rule, chat completions' url_citation annotations (whole and
streamed, read through the ``openai`` package), ``web_search_options``, and every backend's URLs
kept through the loop (scripted engine, in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from service.agent.citations import cited_documents, normalise
from service.engine.scripted import ScriptedEngine, search_then
from service.protocol import DocOut, SearchStep
from service.search.base import Doc
from service.search.corpus import embedded_corpus_path, read_embedded, wikipedia_url
from service.settings import Settings
from tests import openai_shapes
from tests.conftest import build_app, running, serve
from tests.fakes import FakeBackend
from tests.helpers import MODEL, ask, assert_error, sse_json

PARIS_URL = "https://en.wikipedia.org/wiki/Paris"
ANSWER = "<think> the first result says so </think>\n<answer> Paris </answer>"


def doc(title: str, text: str, url: str | None = None) -> DocOut:
    return DocOut(title=title, text=text, url=url)


def step(index: int, source: str, *results: DocOut, info: str | None = None) -> SearchStep:
    return SearchStep(
        index=index, query=f"q{index}", source=source, results=list(results), self_information=info
    )  # type: ignore[arg-type]


# -- the rule ------------------------------------------------------------------------------------
def test_the_results_holding_the_answer_are_cited_in_reading_order_each_url_once() -> None:
    steps = [
        step(
            0,
            "real",
            doc("Lyon", "A city in France.", "u:lyon"),
            doc("Paris", "Paris is the capital.", "u:p"),
        ),
        step(1, "real", doc("France", "Its capital is Paris.", "u:fr"), doc("Paris", "Paris again.", "u:p")),
    ]
    assert [d.url for d in cited_documents(steps, "Paris")] == ["u:p", "u:fr"]


def test_without_a_holder_the_top_result_of_the_last_search_with_results_is_cited() -> None:
    first = step(0, "real", doc("Lyon", "A city.", "u:lyon"))
    no_url_first = step(1, "real", doc("France", "A country."), doc("Nice", "On the Riviera.", "u:nice"))
    empty = step(2, "real")
    assert [d.url for d in cited_documents([first, empty], "Rome")] == ["u:lyon"]
    # the top result that has a URL, of the last search that returned results
    assert [d.url for d in cited_documents([first, no_url_first, empty], "Rome")] == ["u:nice"]


def test_self_written_information_and_missing_answers_are_never_cited() -> None:
    self_step = step(0, "self", info="Paris is the capital of France.")
    fallback = step(1, "fallback", info="Paris, says the model.")
    assert cited_documents([self_step, fallback], "Paris") == []
    real = step(2, "real", doc("Paris", "Paris is the capital.", "u:p"))
    assert cited_documents([self_step, real], None) == []
    assert cited_documents([real], "  ") == []
    assert cited_documents([real, self_step], "Paris")[0].url == "u:p"
    # results without a URL are not cited, even when they hold the answer
    assert cited_documents([step(0, "real", doc("Paris", "Paris is the capital."))], "Paris") == []


def test_the_callers_results_are_cited_in_client_mode() -> None:
    steps = [step(0, "client", doc("Paris", "Paris is the capital.", "u:p"))]
    assert [d.url for d in cited_documents(steps, "Paris")] == ["u:p"]


def test_the_answer_is_matched_as_whole_words_after_squad_normalisation() -> None:
    assert normalise("The  Eiffel-Tower!") == "eiffeltower"
    tower = step(0, "real", doc("Eiffel Tower", "The Eiffel Tower is in Paris.", "u:t"))
    assert cited_documents([tower], "the Eiffel tower.")[0].url == "u:t"
    parisian = step(0, "real", doc("Cafe", "A Parisian cafe.", "u:c"), doc("Paris", "Paris.", "u:p"))
    assert [d.url for d in cited_documents([parisian], "Paris")] == ["u:p"]


# -- chat completions ------------------------------------------------------------------------------
def openai_client(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key="none", http_client=http, max_retries=0)


async def test_a_real_answer_carries_url_citations_read_through_openai() -> None:
    async with serve(ScriptedEngine(search_then(ANSWER)), FakeBackend(name="local")) as http:
        raw = await http.post("/v1/chat/completions", json=ask(search_mode="real"))
        reply = await openai_client(http).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "capital of France?"}],
            extra_body={"search_mode": "real"},
        )
    openai_shapes.chat_completion(raw.json())
    message = reply.choices[0].message
    assert message.content == "Paris"
    [annotation] = message.annotations or []
    assert annotation.type == "url_citation"
    citation = annotation.url_citation
    assert (citation.url, citation.title) == (PARIS_URL, "Paris")
    assert message.content[citation.start_index : citation.end_index] == "Paris"
    # the cited document is one the trajectory read
    [search] = reply.model_extra["search_trace"]["steps"]
    assert citation.url in [r["url"] for r in search["results"]]


async def test_streamed_annotations_arrive_once_with_the_answer_and_accumulate_in_openai() -> None:
    async with serve(ScriptedEngine(search_then(ANSWER)), FakeBackend(name="local")) as http:
        r = await http.post("/v1/chat/completions", json=ask(search_mode="real", stream=True))
        async with openai_client(http).chat.completions.stream(
            model=MODEL,
            messages=[{"role": "user", "content": "capital of France?"}],
            extra_body={"search_mode": "real"},
        ) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
    chunks = sse_json(r.text)
    for chunk in chunks:
        openai_shapes.chat_chunk(chunk)
    carrying = [c for c in chunks if c["choices"] and "annotations" in c["choices"][0]["delta"]]
    assert len(carrying) == 1 and carrying[0]["choices"][0]["delta"]["content"] == "Paris"
    assert carrying[0]["choices"][0]["finish_reason"] == "stop"
    [annotation] = final.choices[0].message.annotations or []
    assert annotation.url_citation.url == PARIS_URL
    assert (annotation.url_citation.start_index, annotation.url_citation.end_index) == (0, 5)


async def test_self_mode_and_a_failed_backend_cite_nothing() -> None:
    self_written = (
        "<search> capital </search><information> Paris is the capital </information><answer> Paris </answer>"
    )
    async with serve(ScriptedEngine(self_written)) as http:
        body = (await http.post("/v1/chat/completions", json=ask(search_mode="self"))).json()
    assert body["choices"][0]["message"]["annotations"] == []
    failing = FakeBackend(name="local", fail="timeout")
    async with serve(ScriptedEngine(search_then(ANSWER)), failing) as http:
        body = (await http.post("/v1/chat/completions", json=ask(search_mode="real"))).json()
    assert body["search_trace"]["steps"][0]["source"] == "fallback"
    assert body["choices"][0]["message"]["content"] == "Paris"
    assert body["choices"][0]["message"]["annotations"] == []


async def test_plain_chat_has_no_annotations_key() -> None:
    async with serve(ScriptedEngine("Hello.")) as http:
        body = (await http.post("/v1/chat/completions", json=ask(search_mode="off"))).json()
    assert "annotations" not in body["choices"][0]["message"]


# -- web_search_options ------------------------------------------------------------------------------
@pytest.mark.parametrize(("size", "top_k"), [("low", 1), ("medium", 3), ("high", 5), (None, 3)])
async def test_search_context_size_sets_the_results_per_search(size: str | None, top_k: int) -> None:
    backend = FakeBackend(name="local")
    options: dict[str, Any] = {"user_location": {"type": "approximate", "approximate": {"country": "FR"}}}
    if size:
        options["search_context_size"] = size
    async with serve(ScriptedEngine(search_then(ANSWER)), backend) as http:
        r = await http.post("/v1/chat/completions", json=ask(search_mode="real", web_search_options=options))
    assert r.status_code == 200, r.text
    assert backend.queries == [("What is the capital of France?", top_k)]


async def test_search_top_k_wins_over_the_context_size() -> None:
    backend = FakeBackend(name="local")
    body = ask(search_mode="real", search={"top_k": 2}, web_search_options={"search_context_size": "high"})
    async with serve(ScriptedEngine(search_then(ANSWER)), backend) as http:
        assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
    assert backend.queries[0][1] == 2


async def test_web_search_options_in_plain_chat_or_malformed_are_a_400() -> None:
    async with serve(ScriptedEngine("Hello.")) as http:
        off = await http.post("/v1/chat/completions", json=ask(search_mode="off", web_search_options={}))
        bad = await http.post(
            "/v1/chat/completions",
            json=ask(search_mode="real", web_search_options={"search_context_size": "huge"}),
        )
    error = assert_error(off, 400, param="web_search_options")
    assert "search_mode" in error["message"]
    assert_error(bad, 400, param="web_search_options.search_context_size")


# -- every backend's URLs, through the loop -------------------------------------------------------------
WIKI = {"title": "Paris - Wikipedia", "url": PARIS_URL, "text": "Paris is the capital of France."}
OTHER = {"title": "France", "url": "https://example.org/fr", "text": "A country."}
PAYLOADS: dict[str, tuple[str, dict[str, Any]]] = {
    "serper": (
        "/search",
        {"organic": [{"title": d["title"], "link": d["url"], "snippet": d["text"]} for d in (WIKI, OTHER)]},
    ),
    "tavily": (
        "/search",
        {"results": [{"title": d["title"], "url": d["url"], "content": d["text"]} for d in (WIKI, OTHER)]},
    ),
    "brave": (
        "/res/v1/web/search",
        {
            "web": {
                "results": [
                    {"title": d["title"], "url": d["url"], "description": d["text"]} for d in (WIKI, OTHER)
                ]
            }
        },
    ),
    "searxng": (
        "/search",
        {"results": [{"title": d["title"], "url": d["url"], "content": d["text"]} for d in (WIKI, OTHER)]},
    ),
    "retriever": (
        "/retrieve",
        {
            "result": [
                [
                    {
                        "document": {
                            "id": str(i),
                            "contents": f'"{d["title"]}"\n{d["text"]}',
                            "url": d["url"],
                        },
                        "score": 1.0,
                    }
                    for i, d in enumerate((WIKI, OTHER))
                ]
            ]
        },
    ),
}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
async def test_every_api_backend_keeps_its_urls_through_the_loop(name: str) -> None:
    path, payload = PAYLOADS[name]

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith(path), request.url
        return httpx.Response(200, json=payload)

    settings = Settings(model=MODEL, search={"backend": name, name: {"api_key": "k"}})
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as outbound:
        app = build_app(settings, engine=ScriptedEngine(search_then(ANSWER)), http_client=outbound)
        async with running(app) as http:
            body = (await http.post("/v1/chat/completions", json=ask(search_mode="real"))).json()
    [search] = body["search_trace"]["steps"]
    assert (search["source"], search["backend"]) == ("real", name)
    assert [r["url"] for r in search["results"]] == [PARIS_URL, "https://example.org/fr"]
    [annotation] = body["choices"][0]["message"]["annotations"]
    assert annotation["url_citation"]["url"] == PARIS_URL


async def test_the_local_backend_keeps_its_urls_through_the_loop(tmp_path: Path) -> None:
    from service.search.local import LocalBackend

    corpus = tmp_path / "corpus.jsonl"
    rows = [{**WIKI, "url": PARIS_URL}, OTHER, {"title": "Rome", "text": "Rome is in Italy."}]
    corpus.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    local = await LocalBackend.create(corpus, tmp_path / "index", snippet_words=40)
    async with serve(ScriptedEngine(search_then(ANSWER)), local) as http:
        body = (await http.post("/v1/chat/completions", json=ask(search_mode="real"))).json()
    urls = {r["title"]: r["url"] for r in body["search_trace"]["steps"][0]["results"]}
    assert urls["Paris - Wikipedia"] == PARIS_URL and urls["France"] == "https://example.org/fr"
    assert [a["url_citation"]["url"] for a in body["choices"][0]["message"]["annotations"]] == [PARIS_URL]


def test_every_embedded_article_carries_its_wikipedia_url() -> None:
    corpus = read_embedded(embedded_corpus_path())
    assert all(d.url == wikipedia_url(d.title) for d in corpus.docs)
    assert wikipedia_url("Mount Kilimanjaro") == "https://en.wikipedia.org/wiki/Mount_Kilimanjaro"


async def test_the_callers_urls_are_cited_in_client_mode() -> None:
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    engine = ScriptedEngine(search_then(ANSWER, search="<search> capital of France </search>"))
    async with serve(engine, search_mode="real") as http:
        first = (await http.post("/v1/chat/completions", json=ask(tools=tools))).json()
        message = first["choices"][0]["message"]
        assert message["annotations"] == []  # a tool call: no answer yet
        results = [Doc("Paris", "Paris is the capital of France.", PARIS_URL).__dict__]
        messages = [
            {"role": "user", "content": "What is the capital of France?"},
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": json.dumps(results)},
        ]
        final = (
            await http.post("/v1/chat/completions", json={**ask(tools=tools), "messages": messages})
        ).json()
    assert final["choices"][0]["message"]["content"] == "Paris"
    assert [a["url_citation"]["url"] for a in final["choices"][0]["message"]["annotations"]] == [PARIS_URL]
