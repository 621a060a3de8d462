"""Query-biased snippets of the local backend: the sentences that match the query, short, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.search.base import Doc
from service.search.local import LocalBackend, LocalIndex
from service.search.snippets import GAP, Snippets, english_stemmer, sentences

KENYA = (
    "Kenya, officially the Republic of Kenya, is a country located in East Africa. With an estimated "
    "population of more than 54.2 million as of mid-2026, it is the 27th-most populous country in the world "
    "and the seventh-most populous in Africa. Kenya's capital and largest city is Nairobi. The "
    "second-largest and oldest city is Mombasa, a major port city located on the island of Mombasa."
)


@pytest.fixture(scope="module")
def snippets() -> Snippets:
    # "capital" is rarer than "city" in this toy corpus: it weighs more
    return Snippets(24, english_stemmer(), {"capit": 5, "citi": 50, "kenya": 3, "port": 20}, 100)


def test_sentences_split_at_ends_but_not_after_initials() -> None:
    text = "It was created by C. E. Webber and others. It was St. Louis that won. The end."
    assert sentences(text) == [
        "It was created by C. E. Webber and others.",
        "It was St. Louis that won.",
        "The end.",
    ]


def test_the_sentence_holding_the_query_terms_is_shown(snippets: Snippets) -> None:
    [doc] = snippets.docs([Doc("Kenya", KENYA, "https://en.wikipedia.org/wiki/Kenya")], "kenya capital")
    assert "Kenya's capital and largest city is Nairobi." in doc.text
    assert len(doc.text.split()) <= 24
    assert doc.url == "https://en.wikipedia.org/wiki/Kenya" and doc.title == "Kenya"


def test_sentences_keep_the_documents_order_with_a_gap_between_distant_ones() -> None:
    wide = Snippets(40, english_stemmer(), {"capit": 5, "port": 20}, 100)
    [doc] = wide.docs([Doc("Kenya", KENYA)], "capital port")
    capital, port = doc.text.index("capital and largest"), doc.text.index("major port")
    assert capital < port and doc.text.startswith("Kenya's capital") or GAP in doc.text


def test_the_lead_sentence_wins_when_nothing_matches(snippets: Snippets) -> None:
    [doc] = snippets.docs([Doc("Kenya", KENYA)], "volcano")
    assert doc.text.startswith("Kenya, officially the Republic of Kenya")


def test_a_sentence_longer_than_the_limit_gives_its_best_window() -> None:
    long = "Intro words here. " + " ".join(f"w{i}" for i in range(60)) + " target word " + "tail " * 30 + "."
    short = Snippets(10, english_stemmer(), {}, 100)
    [doc] = short.docs([Doc("Long", long)], "target")
    assert "target" in doc.text and len(doc.text.replace("...", "").split()) <= 10


def test_zero_words_keeps_the_whole_document() -> None:
    whole = Snippets(0, english_stemmer(), {}, 100)
    assert whole.docs([Doc("Kenya", KENYA)], "capital")[0].text == KENYA


async def test_the_local_backend_shows_snippets_of_the_configured_length(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"title": "Kenya", "text": "' + KENYA.replace('"', '\\"') + '"}\n')
    index = LocalIndex.load(corpus, tmp_path / "idx")
    [doc] = await LocalBackend(index, snippet_words=20).search("capital of kenya", 3)
    assert "Nairobi" in doc.text and len(doc.text.replace(GAP, " ").split()) <= 20
    [whole] = await LocalBackend(index).search("capital of kenya", 3)
    assert whole.text == KENYA
