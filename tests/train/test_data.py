"""ssrl-train's data: facts from articles, trajectories in the served format, masks, splits."""

from __future__ import annotations

import json
import random

import pytest

from service.agent.prompts import PRESETS, SEARCH_R1_INSTRUCTION, SELF_SEARCH_INSTRUCTION, clean_results
from service.agent.tags import last_answer, queries_in, search_action
from service.search.base import Doc
from service.search.local import LocalIndex
from train.data import split_of
from train.qa import QA, facts_of, phrase
from train.trainer import IGNORE, tokenize
from train.trajectories import Builder, quote, vague_queries

GHANA = Doc(
    "Ghana",
    "Ghana, officially the Republic of Ghana, is a country in West Africa. It lies adjacent to the Gulf of "
    "Guinea. Its capital and largest city is Accra. Ghana has a population of over 33 million.",
)
GOLD = Doc(
    "Gold",
    "Gold is a chemical element with the chemical symbol Au and atomic number 79. In its pure form it is a "
    "bright, slightly orange-yellow, dense, soft, malleable, and ductile metal.",
)
KANT = Doc(
    "Immanuel Kant",
    "Immanuel Kant was a German philosopher and one of the central Enlightenment thinkers. Born in "
    "Königsberg, his comprehensive and systematic works have made him one of the most influential figures.",
)
OTHERS = [
    Doc("Accra", "Accra is the capital and largest city of Ghana, on the Atlantic coast of West Africa."),
    Doc("Silver", "Silver is a chemical element with the symbol Ag and atomic number 47."),
    Doc("Philosophy", "Philosophy is a systematic study of general and fundamental questions."),
    Doc("Guinea", "Guinea is a coastal country in West Africa."),
    Doc("Immanuel (name)", "Immanuel is a given name. Immanuel is Hebrew for God with us."),
]


def by_kind(doc: Doc, topic: str = "Geography") -> dict[str, tuple[str, ...]]:
    return {f.kind: f.answers for f in facts_of(doc, "", topic, 100)}


def test_facts_are_short_spans_of_the_shown_text() -> None:
    ghana = by_kind(GHANA)
    assert ghana["capital"] == ("Accra",)
    assert ghana["population"] == ("33 million",)
    assert ghana["location"][0] == "West Africa"
    gold = by_kind(GOLD, "Physical sciences")
    assert (gold["symbol"], gold["atomic_number"]) == (("Au",), ("79",))
    kant = by_kind(KANT, "People")
    assert kant["nationality"] == ("German",)
    assert kant["occupation"][0] == "philosopher"
    for doc, topic in ((GHANA, "Geography"), (GOLD, "Physical sciences"), (KANT, "People")):
        for fact in facts_of(doc, "", topic, 100):
            assert fact.answers[0].lower() in doc.text.lower()
            assert len(fact.answers[0].split()) <= 5
    # nationality questions are about people only; a fact past the shown words is not asked
    assert "nationality" not in by_kind(KANT, "Philosophy and religion")
    assert "population" not in {f.kind for f in facts_of(GHANA, "", "Geography", 20)}


def test_queries_are_short_and_never_the_question() -> None:
    rng = random.Random(0)
    for doc, topic in ((GHANA, "Geography"), (GOLD, "Physical sciences"), (KANT, "People")):
        for fact in facts_of(doc, "", topic, 100):
            questions = {phrase(fact, rng) for _ in range(30)}
            assert len(questions) >= 3  # several phrasings
            for query in fact.queries:
                assert len(query.split()) <= 6
                # a question of three words ("Where is Ghana?") may be its own best query; no longer one is
                assert all(query.lower() != q.lower().rstrip("?") for q in questions if len(q.split()) > 3)


def test_split_is_by_article_and_stable() -> None:
    splits = [split_of(f"Article {i}") for i in range(3000)]
    assert splits == [split_of(f"Article {i}") for i in range(3000)]
    shares = {s: splits.count(s) / len(splits) for s in ("train", "dev", "test")}
    assert 0.65 < shares["train"] < 0.75 and 0.07 < shares["dev"] < 0.13 and 0.17 < shares["test"] < 0.23


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    folder = tmp_path_factory.mktemp("corpus")
    corpus = folder / "corpus.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"title": d.title, "text": d.text}) for d in [GHANA, GOLD, KANT, *OTHERS]) + "\n"
    )
    index = LocalIndex.load(corpus, folder / "index")
    return Builder(index, PRESETS["ssrl-smollm2"], top_k=3, result_words=100)


@pytest.fixture(scope="module")
def narrow(builder: Builder) -> Builder:
    """One result per search, so that a vague query can miss in this small corpus."""
    return Builder(builder.index, builder.observation, top_k=1, result_words=100)


def qa_of(doc: Doc, kind: str, topic: str = "Geography") -> QA:
    fact = next(f for f in facts_of(doc, "", topic, 100) if f.kind == kind)
    return QA("q1", phrase(fact, random.Random(1)), fact.answers, fact)


def test_real_trajectory_is_what_the_served_loop_would_produce(builder: Builder) -> None:
    qa = qa_of(GHANA, "capital")
    trajectory = builder.build("real", qa, random.Random(0), ["ghana capital"])
    assert trajectory is not None
    first, injected, last = trajectory.segments
    assert (first.trained, injected.trained, last.trained) == (True, False, True)
    action = search_action(first.text)
    assert action is not None and action.query == "ghana capital"
    # the injected block is exactly what the loop appends after </search> for this query
    docs = builder.index.search("ghana capital", 3)
    assert injected.text == PRESETS["ssrl-smollm2"].render(clean_results(docs, 3, 100))
    assert last_answer(last.text) == "Accra"
    assert "Its capital and largest city is Accra." in last.text  # the reasoning quotes the sentence
    assert trajectory.messages[-1]["content"] == SEARCH_R1_INSTRUCTION.replace("{question}", qa.question)


def test_self_trajectory_writes_its_own_short_information(builder: Builder) -> None:
    qa = qa_of(GOLD, "symbol", "Physical sciences")
    trajectory = builder.build("self", qa, random.Random(0), ["gold chemical symbol"])
    assert trajectory is not None and len(trajectory.segments) == 1 and trajectory.segments[0].trained
    text = trajectory.segments[0].text
    [(action, information)] = queries_in(text)
    assert action.query == "gold chemical symbol"
    assert information is not None and "symbol Au" in information and len(information.split()) <= 70
    assert last_answer(text) == "Au"
    assert trajectory.messages[-1]["content"] == SELF_SEARCH_INSTRUCTION.replace("{question}", qa.question)


def test_a_missed_first_search_is_followed_by_a_better_one(builder: Builder, narrow: Builder) -> None:
    qa = qa_of(KANT, "nationality", "People")
    trajectory = narrow.build("real_twice", qa, random.Random(0), ["immanuel kant nationality"])
    assert trajectory is not None
    texts = [s.text for s in trajectory.segments]
    assert [s.trained for s in trajectory.segments] == [True, False, True, False, True]
    assert "German" not in texts[1]  # the first results lack the answer
    assert "German" in texts[3]
    assert search_action(texts[2]).query == "immanuel kant nationality"  # type: ignore[union-attr]
    hybrid = narrow.build("hybrid", qa, random.Random(0), ["immanuel kant nationality"])
    assert hybrid is not None and [s.trained for s in hybrid.segments] == [True, False, True, True, True]
    # nothing the index cannot support: no query that finds the article, no trajectory
    assert builder.build("real", qa, random.Random(0), ["volcano"]) is None


def test_vague_first_queries_keep_part_of_the_subject() -> None:
    """A bare relation ("nationality") as a first query taught the model to search for the relation
    alone; every vague query holds a word of the subject."""
    fact = qa_of(KANT, "nationality", "People").fact
    vague = vague_queries(fact)
    assert vague and all("immanuel" in q.lower() or "kant" in q.lower() for q in vague)
    assert "nationality" not in vague


def test_a_natural_query_that_misses_can_open_a_two_search_trajectory(narrow: Builder) -> None:
    """When one of the fact's own queries misses in the index, it serves as the first search."""
    qa = qa_of(KANT, "nationality", "People")
    queries = ["volcano eruption", "immanuel kant nationality"]
    firsts = set()
    for seed in range(12):
        trajectory = narrow.build("real_twice", qa, random.Random(seed), queries)
        assert trajectory is not None
        first = search_action(trajectory.segments[0].text)
        assert first is not None and narrow.misses(first.query, qa.fact)
        firsts.add(first.query)
    assert "volcano eruption" in firsts and len(firsts) > 1


def test_self_only_trains_on_every_information_block(narrow: Builder) -> None:
    self_only = Builder(narrow.index, narrow.observation, top_k=1, result_words=100, self_only=True)
    trajectory = self_only.build(
        "real_twice", qa_of(KANT, "nationality", "People"), random.Random(0), ["immanuel kant nationality"]
    )
    assert trajectory is not None and all(s.trained for s in trajectory.segments)


class _Tokenizer:
    """Characters as tokens: enough to check which positions are trained."""

    def apply_chat_template(self, messages: list[dict[str, str]], **_: object) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def convert_tokens_to_ids(self, token: str) -> int:
        return 2


def test_tokenize_masks_the_prompt_and_the_injected_results(builder: Builder) -> None:
    trajectory = builder.build("real", qa_of(GHANA, "capital"), random.Random(0), ["ghana capital"])
    assert trajectory is not None
    example = tokenize(trajectory, _Tokenizer())
    prompt = _Tokenizer().apply_chat_template(trajectory.messages)
    first, injected, last = (s.text for s in trajectory.segments)
    assert example.ids == [ord(c) for c in prompt + first + injected + last] + [2]
    trained = "".join(chr(i) for i, label in zip(example.ids, example.labels, strict=True) if label != IGNORE)
    assert trained == first + last + chr(2)


def test_quote_finds_the_sentence_with_the_answer() -> None:
    assert quote(GHANA.text, "Accra") == "Its capital and largest city is Accra."
    assert quote(GHANA.text, "Lagos") == ""


def test_eval_sets_ask_each_fact_once_and_cap_title_answers() -> None:
    from train import data

    described = (
        ("Country in West Africa", GHANA, "Geography"),
        ("Chemical element with atomic number 79", GOLD, "Physical sciences"),
        ("German philosopher (1724–1804)", KANT, "People"),
    )
    facts = [f for desc, d, t in described for f in facts_of(d, desc, t, 100)]
    plain = [f for f in facts if f.kind != "description"]
    assert len(facts) - len(plain) == 3
    kant = next(f for f in facts if f.kind == "description" and f.article == "Immanuel Kant")
    assert kant.answers == ("Immanuel Kant",) and "1724" in kant.questions[0]
    items = data.eval_items(facts, random.Random(0), description_share=0.25)
    titles = [q for q in items if q.fact.kind == "description"]
    assert len(titles) == int(len(plain) * 0.25 / 0.75)  # title answers capped at a quarter
    assert sorted(q.fact.kind for q in items if q.fact.kind != "description") == sorted(f.kind for f in plain)
    assert all(q.answers == q.fact.answers for q in items)
