"""ssrl-train's data: facts from articles, trajectories in the served format, masks, splits."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from service.agent.prompts import PRESETS, SEARCH_R1_INSTRUCTION, SELF_SEARCH_INSTRUCTION, clean_results
from service.agent.tags import last_answer, queries_in, search_action
from service.search.base import Doc
from service.search.local import LocalIndex
from train.card import added_section
from train.data import HELD_OUT, added_trajectories, answer_sentences, held_out_titles, split_of, trainable
from train.qa import QA, facts_of, phrase, question_keywords
from train.trainer import IGNORE, answer_spans, tokenize
from train.trajectories import Builder, Segment, Trajectory, query_forms, quote, quote_position

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


def by_kind(doc: Doc, topic: str = "Geography", description: str = "") -> dict[str, tuple[str, ...]]:
    return {f.kind: f.answers for f in facts_of(doc, description, topic, 100)}


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
    assert kant["birthplace"] == ("Königsberg",)
    for doc, topic in ((GHANA, "Geography"), (GOLD, "Physical sciences"), (KANT, "People")):
        for fact in facts_of(doc, "", topic, 100):
            assert fact.answers[0].lower() in doc.text.lower()
            assert len(fact.answers[0].split()) <= 5
    # nationality questions are about people only; a fact past the shown words is not asked
    assert "nationality" not in by_kind(KANT, "Philosophy and religion")
    assert "population" not in {f.kind for f in facts_of(GHANA, "", "Geography", 20)}


def test_the_rule_table_reads_aliases_works_and_things_asked_for_themselves() -> None:
    mars = Doc(
        "Mars",
        'Mars is the fourth planet from the Sun. It is also known as the "Red Planet", for its colour.',
    )
    assert by_kind(mars, "Uncategorized")["known_as"] == ("Mars",)
    everest = Doc(
        "Mount Everest", "Mount Everest is the highest mountain on Earth above sea level. It lies in Nepal."
    )
    [fact] = [f for f in facts_of(everest, "", "Geography", 100) if f.kind == "superlative"]
    assert fact.subject == "highest mountain on Earth above sea level" and fact.answers == ("Mount Everest",)
    novel = Doc("Emma (novel)", "Emma is a novel by Jane Austen. It was first published in December 1815.")
    assert by_kind(novel, "Arts")["by_written"] == ("Jane Austen", "Austen")
    nauru = Doc("Nauru", "Nauru, formerly known as Pleasant Island, is an island country in Micronesia.")
    assert by_kind(nauru)["former_name"] == ("Pleasant Island",)
    bell = Doc("Alexander Graham Bell", "Alexander Graham Bell was a Scottish-born inventor and scientist.")
    invented = {f.kind: f for f in facts_of(bell, "Inventor of the telephone (1847–1922)", "People", 100)}
    assert invented["by_invented"].subject == "the telephone"
    assert invented["by_invented"].answers[0] == "Alexander Graham Bell"
    # a description naming a class of things, not one thing, asks nothing
    assert "description" not in by_kind(
        Doc("Metal", "A metal is a material."), "Physical sciences", "Type of material"
    )


def test_every_relation_has_fifteen_hand_written_phrasings() -> None:
    from train.phrasings import RELATIONS

    for kind, relation in RELATIONS.items():
        assert len(set(relation.questions)) >= 15, kind
        assert all("{s}" in q for q in relation.questions), kind


def test_questions_are_noised_as_people_type_them_and_queries_name_the_subject() -> None:
    rng = random.Random(0)
    fact = next(f for f in facts_of(KANT, "", "People", 100) if f.kind == "nationality")
    asked = [phrase(fact, rng) for _ in range(400)]
    questions = [q for q, _, _ in asked]
    assert len(set(questions)) >= 40
    assert 0.2 < sum(q == q.lower() for q in questions) / 400 < 0.6  # lower case
    assert 0.25 < sum(not q.endswith("?") for q in questions) / 400 < 0.6  # no question mark
    assert any(q != clean for q, _, clean in asked)  # typos, with the clean question kept
    assert {s for _, s, _ in asked} == {"Immanuel Kant", "Kant"}  # full and partial names
    for question, subject, clean in asked[:50]:
        qa = QA("q", question, fact.answers, fact, subject, clean)
        for query in query_forms(qa, rng):
            assert subject.lower() in query.lower()  # never a bare relation
            assert query.lower() not in ("nationality", "biography")


def test_question_keywords_drop_question_words_but_keep_names() -> None:
    assert question_keywords("Hi, Doctor Who was created by who?") == "Doctor Who created by"
    assert question_keywords("what's the name of the clade of insects") == "clade of insects"
    assert question_keywords("Which one is the most populous city in Kazakhstan?") == (
        "most populous city in Kazakhstan"
    )


def test_split_is_by_article_and_stable() -> None:
    splits = [split_of(f"Article {i}") for i in range(3000)]
    assert splits == [split_of(f"Article {i}") for i in range(3000)]
    shares = {s: splits.count(s) / len(splits) for s in ("train", "dev", "test")}
    assert 0.65 < shares["train"] < 0.75 and 0.07 < shares["dev"] < 0.13 and 0.17 < shares["test"] < 0.23


def test_the_natural_sets_are_held_out_by_article_and_subject() -> None:
    held = held_out_titles()
    assert {"mona lisa", "hamlet", "kenya", "mount kilimanjaro", "alexander graham bell", "telephone"} <= held
    dev, test = ({json.loads(line)["article"] for line in p.read_text().splitlines()} for p in HELD_OUT)
    assert dev and test and not dev & test  # split by article


def test_only_training_articles_outside_the_natural_sets_are_trainable() -> None:
    held = held_out_titles()
    fact = next(f for f in facts_of(GHANA, "", "Geography", 100) if f.kind == "capital")
    train_title = next(f"Article {i}" for i in range(100) if split_of(f"Article {i}") == "train")
    test_title = next(f"Article {i}" for i in range(100) if split_of(f"Article {i}") == "test")
    assert trainable(replace(fact, article=train_title, subject=train_title), held)
    assert not trainable(replace(fact, article=test_title, subject=test_title), held)
    assert not trainable(replace(fact, article=train_title, subject="Mona Lisa"), held)  # a natural subject
    assert not trainable(replace(fact, article=train_title, subject=train_title), {train_title.lower()})


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
    """One result per search, so that a query can miss in this small corpus."""
    return Builder(builder.index, builder.observation, top_k=1, result_words=100)


def qa_of(doc: Doc, kind: str, topic: str = "Geography", question: str = "", subject: str = "") -> QA:
    fact = next(f for f in facts_of(doc, "", topic, 100) if f.kind == kind)
    asked = question or fact.questions[0].replace("{s}", fact.subject)
    return QA("q1", asked, fact.answers, fact, subject or fact.subject, asked)


def test_real_trajectory_is_what_the_served_loop_would_produce(builder: Builder) -> None:
    qa = qa_of(GHANA, "capital", question="What is the capital of Ghana?")
    trajectory = builder.build("real", qa, random.Random(0))
    assert trajectory is not None
    first, injected, last = trajectory.segments
    assert (first.trained, injected.trained, last.trained) == (True, False, True)
    action = search_action(first.text)
    assert action is not None and "Ghana" in action.query
    # the injected block is exactly what the loop appends after </search> for this query: the
    # backend's query-biased snippets, cleaned
    docs = builder.snippets.docs(builder.index.search(action.query, 3), action.query)
    assert injected.text == PRESETS["ssrl-smollm2"].render(clean_results(docs, 3, 100))
    assert last_answer(last.text) == "Accra"
    assert "Its capital and largest city is Accra." in last.text  # the reasoning quotes the sentence
    rank = next(i for i, d in enumerate(docs, 1) if d.title == "Ghana")
    assert f"Doc {rank}" in last.text and trajectory.ranks == (rank,)  # it names the result it read
    assert trajectory.messages[-1]["content"] == SEARCH_R1_INSTRUCTION.replace("{question}", qa.question)


def test_self_trajectory_writes_its_own_short_information(builder: Builder) -> None:
    qa = qa_of(GOLD, "symbol", "Physical sciences")
    trajectory = builder.build("self", qa, random.Random(0))
    assert trajectory is not None and len(trajectory.segments) == 1 and trajectory.segments[0].trained
    text = trajectory.segments[0].text
    [(action, information)] = queries_in(text)
    assert "gold" in action.query.lower()
    assert information is not None and "symbol Au" in information and len(information.split()) <= 70
    assert last_answer(text) == "Au"
    assert trajectory.messages[-1]["content"] == SELF_SEARCH_INSTRUCTION.replace("{question}", qa.question)


def test_a_missed_first_search_is_followed_by_a_better_one(narrow: Builder) -> None:
    # "Immanuel" alone finds the article about the name; the full name finds the philosopher
    qa = qa_of(
        KANT, "nationality", "People", question="what nationality was immanuel kant", subject="Immanuel"
    )
    made = [narrow.build("real_twice", qa, random.Random(seed)) for seed in range(8)]
    for trajectory in filter(None, made):
        texts = [s.text for s in trajectory.segments]
        assert [s.trained for s in trajectory.segments] == [True, False, True, False, True]
        assert "German" not in texts[1] and "German" in texts[3]  # the first results lack the answer
        first, second = search_action(texts[0]), search_action(texts[2])
        assert first is not None and second is not None and first.query != second.query
        assert narrow.misses(first.query, qa.fact)
    assert any(made)
    hybrid = next(filter(None, (narrow.build("hybrid", qa, random.Random(s)) for s in range(8))))
    assert [s.trained for s in hybrid.segments] == [True, False, True, True, True]


def test_nothing_is_made_that_the_index_cannot_support(builder: Builder) -> None:
    volcano = Doc("Volcano", "A volcano is a rupture in the crust.")
    fact = facts_of(GHANA, "", "Geography", 100)[0]
    lost = QA("q", "tell me about volcanoes", fact.answers, fact, "volcano", "tell me about volcanoes")
    assert builder.build("real", lost, random.Random(0)) is None or volcano.title not in lost.question


def test_a_greeting_gets_a_short_answer_without_a_search(builder: Builder) -> None:
    trajectory = builder.chat(random.Random(0), 1)
    [segment] = trajectory.segments
    assert segment.trained and "<search>" not in segment.text and last_answer(segment.text)
    assert len(segment.text.split()) < 40


def test_self_only_trains_on_every_information_block(narrow: Builder) -> None:
    self_only = Builder(narrow.index, narrow.observation, top_k=1, result_words=100, self_only=True)
    qa = qa_of(
        KANT, "nationality", "People", question="what nationality was immanuel kant", subject="Immanuel"
    )
    trajectory = next(filter(None, (self_only.build("real_twice", qa, random.Random(s)) for s in range(8))))
    assert all(s.trained for s in trajectory.segments)
    # its self-search writes what the backend would have returned, in the served layout
    own = self_only.build("self", qa_of(GOLD, "symbol", "Physical sciences"), random.Random(0))
    assert own is not None and "Doc 1: Gold" in own.segments[0].text


class _Tokenizer:
    """Characters as tokens: enough to check which positions are trained."""

    def apply_chat_template(self, messages: list[dict[str, str]], **_: object) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def convert_tokens_to_ids(self, token: str) -> int:
        return 2

    def __call__(self, text: str, **_: object) -> dict[str, list]:
        return {"input_ids": self.encode(text), "offset_mapping": [(i, i + 1) for i in range(len(text))]}


def test_tokenize_masks_the_prompt_and_the_injected_results(builder: Builder) -> None:
    trajectory = builder.build("real", qa_of(GHANA, "capital"), random.Random(0))
    assert trajectory is not None
    example = tokenize(trajectory, _Tokenizer())
    prompt = _Tokenizer().apply_chat_template(trajectory.messages)
    first, injected, last = (s.text for s in trajectory.segments)
    assert example.ids == [ord(c) for c in prompt + first + injected + last] + [2]
    trained = "".join(chr(i) for i, label in zip(example.ids, example.labels, strict=True) if label != IGNORE)
    assert trained == first + last + chr(2)


def test_the_answer_spans_are_the_stated_answer_not_the_quote() -> None:
    text = (
        '<think> Doc 1 is about Ghana: "Its capital and largest city is Accra." So the answer is '
        "Accra. </think>\n<answer> Accra </answer>"
    )
    spans = answer_spans(text)
    assert [text[a:b] for a, b in spans] == ["Accra", "Accra"]
    quoted = text.index("Accra")
    assert all(a > quoted for a, _ in spans)  # the quotation's copy is not the choice
    assert spans[-1][0] > text.index("<answer>")
    # Only the <answer> text when the reasoning names the answer only inside its quotation.
    only = '<think> "Its capital is Accra." </think>\n<answer> Accra </answer>'
    (span,) = answer_spans(only)
    assert only[span[0] : span[1]] == "Accra" and span[0] > only.index("<answer>")
    assert answer_spans("<think> I need to search. </think>\n<search> Ghana </search>") == []


def test_answer_weight_weighs_the_tokens_that_state_the_answer(builder: Builder) -> None:
    trajectory = builder.build("real", qa_of(GHANA, "capital"), random.Random(0))
    assert trajectory is not None
    plain = tokenize(trajectory, _Tokenizer())
    weighted = tokenize(trajectory, _Tokenizer(), answer_weight=5.0)
    assert plain.weights == () and weighted.ids == plain.ids and weighted.labels == plain.labels
    heavy = "".join(chr(i) for i, w in zip(weighted.ids, weighted.weights, strict=True) if w == 5.0)
    assert heavy == "Accra" * 2, heavy  # the reasoning's "... is Accra" and <answer> Accra
    masked = [w for w, label in zip(weighted.weights, weighted.labels, strict=True) if label == IGNORE]
    assert set(masked) == {1.0}
    # A chat turn's reply is not an answer read from results: nothing weighed.
    assert tokenize(builder.chat(random.Random(0), 1), _Tokenizer(), answer_weight=5.0).weights == ()


def test_quote_finds_the_sentence_with_the_answer() -> None:
    assert quote(GHANA.text, "Accra") == "Its capital and largest city is Accra."
    assert quote(GHANA.text, "Lagos") == ""


def test_a_quote_to_the_answer_ends_with_it_unless_the_sentence_opens_with_it() -> None:
    assert quote(GHANA.text, "33 million", to_answer=True) == "Ghana has a population of over 33 million"
    assert quote(GHANA.text, "Accra", words=3, to_answer=True) == "city is Accra"
    # An answer that opens its sentence keeps what the sentence says of it.
    assert quote(GHANA.text, "Ghana", to_answer=True) == quote(GHANA.text, "Ghana")


def test_quote_to_answer_ends_the_reasoning_quote_with_the_answer(builder: Builder) -> None:
    qa = qa_of(GHANA, "population")
    quoting = Builder(builder.index, builder.observation, top_k=3, result_words=100, quote_to_answer=1.0)
    made = quoting.build("real", qa, random.Random(0))
    assert made is not None
    assert f'{qa.fact.answers[0]}"' in made.segments[-1].text
    assert '33 million."' not in made.segments[-1].text  # not the whole sentence, stop and all
    # At 0 (the default) nothing more is drawn: a seed makes the same trajectory as before.
    plain = Builder(builder.index, builder.observation, top_k=3, result_words=100, quote_to_answer=0.0)
    assert plain.build("real", qa, random.Random(0)) == builder.build("real", qa, random.Random(0))


def test_a_trajectory_records_which_sentence_of_its_result_it_quotes(builder: Builder) -> None:
    assert [quote_position(GHANA.text, a) for a in ("Republic of Ghana", "Accra", "33 million", "Lagos")] == [
        1,
        3,
        4,
        0,
    ]
    trajectory = builder.build("real", qa_of(GHANA, "capital"), random.Random(0))
    assert trajectory is not None and trajectory.sentence == 3  # "Its capital and largest city is Accra."
    assert Trajectory.from_json(json.loads(json.dumps(trajectory.to_json()))).sentence == 3
    chat = builder.chat(random.Random(0), 1)
    assert chat.sentence == 0 and answer_sentences([trajectory, trajectory, chat]) == {3: 2}


def test_eval_sets_ask_each_fact_once_and_cap_title_answers() -> None:
    from train import data

    described = (
        ("Country in West Africa", GHANA, "Geography"),
        ("Chemical element with atomic number 79", GOLD, "Physical sciences"),
        ("German philosopher (1724–1804)", KANT, "People"),
    )
    facts = [f for desc, d, t in described for f in facts_of(d, desc, t, 100)]
    plain = [f for f in facts if f.kind not in data.TITLE_KINDS]
    assert len(facts) - len(plain) == 3
    kant = next(f for f in facts if f.kind == "lived" and f.article == "Immanuel Kant")
    assert kant.answers[0] == "Immanuel Kant" and any("1724" in q for q in kant.questions)
    items = data.eval_items(facts, random.Random(0), description_share=0.25)
    titles = [q for q in items if q.fact.kind in data.TITLE_KINDS]
    assert len(titles) == int(len(plain) * 0.25 / 0.75)  # title answers capped at a quarter
    assert sorted(q.fact.kind for q in items if q.fact.kind not in data.TITLE_KINDS) == sorted(
        f.kind for f in plain
    )
    assert all(q.answers == q.fact.answers for q in items)


def test_the_held_out_check_finds_natural_questions_a_template_would_make() -> None:
    from train.heldout import collisions, normalise, template_outputs

    facts = facts_of(KANT, "", "People", 100)
    made = template_outputs(facts)
    rows = [
        {"question": "What nationality was Immanuel Kant?"},  # a phrasing of the nationality relation
        {"question": "hey, kant nationality"},  # a short name, after a filler
        {"question": "Which philosopher wrote the Critique of Pure Reason?"},  # not a template's
    ]
    found = collisions(rows, made)
    assert [q for q, _, _ in found] == [rows[0]["question"], rows[1]["question"]]
    assert all(kind == "nationality" and article == "Immanuel Kant" for _, kind, article in found)
    assert normalise("Quick q: Who wrote HAMLET?") == "who wrote hamlet"


def test_em_without_the_template_made_questions(tmp_path: Path) -> None:
    from train.heldout import em_without

    results = tmp_path / "results.jsonl"
    rows = [
        {"id": "a", "mode": "real", "question": "who wrote hamlet", "em": 1.0, "error": None},
        {"id": "b", "mode": "real", "question": "Hamlet's author, anyone?", "em": 0.0, "error": None},
        {"id": "c", "mode": "real", "question": "where is lake tana", "em": 1.0, "error": None},
        {"id": "c", "mode": "self", "question": "where is lake tana", "em": 0.0, "error": None},
        {"id": "z", "mode": "real", "question": "another set's", "em": 1.0, "error": None},
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    groups = {"a": "well-known", "b": "well-known", "c": "less-known"}
    got = em_without(results, {"who wrote hamlet"}, groups)
    assert got["real"] == {"all (n=2)": 50.0, "less-known (n=1)": 100.0, "well-known (n=1)": 0.0}
    assert got["self"] == {"all (n=1)": 0.0, "less-known (n=1)": 0.0}


def test_the_card_says_what_added_trajectories_are() -> None:
    def made(kind: str, ranks: tuple[int, ...] = ()) -> Trajectory:
        return Trajectory(f"q-{kind}", kind, [], [Segment("<answer> x </answer>", True)], ("x",), ranks)

    added = [made("own"), made("own"), made("real", (2,)), made("real_twice", (1, 3)), made("self", (1,))]
    stats = added_trajectories(added)  # ranks: a real search's first (the data stats count the same)
    assert stats == {"own_trajectories": 2, "built_added": 3, "built_added_rank": {1: 1, 2: 1}}
    line = added_section({**stats, "own_from": ["runs/a/own.jsonl", "runs/r3/data/trajectories.jsonl"]})
    assert "2 of the model's own trajectories" in line and "3 trajectories built by an earlier" in line
    assert "runs/r3/data/trajectories.jsonl" in line
    only_built = added_section({**added_trajectories(added[2:]), "own_from": ["x.jsonl"]})
    assert "model's own" not in only_built and "3 trajectories built" in only_built
    assert added_section({}) == ""
