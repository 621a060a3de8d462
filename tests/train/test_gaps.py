"""Open-relation questions (train.gaps): the name or year completing a sentence about the subject."""

from __future__ import annotations

import json
import random

from service.agent.prompts import PRESETS
from service.search.base import Doc
from service.search.local import LocalIndex
from train.card import gap_section
from train.gaps import KIND, gap_facts
from train.qa import QA, phrase
from train.trajectories import Builder, query_forms

SALWEEN = Doc(
    "Salween",
    "The Salween is a river in Southeast Asia. It flows from the Tibetan Plateau into the Andaman Sea. "
    "Its basin covers parts of China, Myanmar and Thailand.",
)
CHALCOLITHIC = Doc(
    "Chalcolithic",
    "The Chalcolithic was an archaeological period characterized by the increasing use of smelted copper. "
    "It followed the Neolithic and preceded the Bronze Age.",
)
TIMES = Doc("The Times", "The Times is a British daily national newspaper based in London. It began in 1785.")
LEVIATHAN = Doc(
    "Leviathan (Hobbes book)", "Leviathan or The Matter, Forme and Power of a Commonwealth is a book."
)


def test_the_answer_completes_a_sentence_and_is_never_the_subject() -> None:
    salween = gap_facts(SALWEEN, "Geography", 100)
    assert [f.kind for f in salween] == [KIND, KIND]
    assert salween[0].answers == ("Southeast Asia",)
    # the name after the pronoun's relation, asked with its type word; the bare name answers too
    assert salween[1].answers == ("Andaman Sea", "Andaman")
    assert salween[1].need == "the sea Salween flows from the Tibetan Plateau into"
    assert all("{s}" in q for q in salween[1].questions)
    assert "{s} flows from the Tibetan Plateau into which sea?" in salween[1].questions
    chalco = gap_facts(CHALCOLITHIC, "", 100)
    assert [f.answers for f in chalco] == [("Neolithic",)]
    for fact in (*salween, *chalco):
        assert not set(fact.answers[0].lower().split()) & set(fact.subject.lower().split())


def test_years_only_after_in_and_no_relation_from_an_or_clause() -> None:
    times = gap_facts(TIMES, "", 100)
    assert ("1785",) in [f.answers for f in times]
    year = next(f for f in times if f.answers == ("1785",))
    assert "when {s} began" in year.questions
    assert "{s} began in which year?" in year.questions
    # "London" follows "is a British daily national newspaper based in": a place question
    assert any(
        f.answers == ("London",)
        and "{s} is a British daily national newspaper based in where?" in f.questions
        for f in times
    )
    assert gap_facts(LEVIATHAN, "", 100) == []  # "or The Matter": a second title, not a relation


def test_a_gap_question_makes_a_served_trajectory_read_from_its_sentence(tmp_path) -> None:
    docs = [
        SALWEEN,
        CHALCOLITHIC,
        TIMES,
        Doc("Andaman Sea", "The Andaman Sea is a marginal sea of the Indian Ocean."),
    ]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"title": d.title, "text": d.text}) for d in docs) + "\n")
    index = LocalIndex.load(corpus, tmp_path / "index")
    builder = Builder(index, PRESETS["ssrl-smollm2"], top_k=3, result_words=100)
    fact = gap_facts(SALWEEN, "Geography", 100)[1]
    rng = random.Random(0)
    question, subject, _ = phrase(fact, rng)
    assert subject.lower() in question.lower() and "{s}" not in question
    qa = QA("gap-1", question, fact.answers, fact, subject, question)
    forms = query_forms(qa, rng)
    assert all(subject.lower() in f.lower() for f in forms)  # every query names the subject
    trajectory = builder.build("real", qa, rng)
    assert trajectory is not None
    written = "".join(s.text for s in trajectory.segments if s.trained)
    assert written.rstrip().endswith("<answer> Andaman Sea </answer>")
    assert "flows from the Tibetan Plateau into the Andaman Sea" in written  # the quoted sentence


def test_the_card_says_what_the_open_relation_questions_are_only_where_made() -> None:
    assert gap_section({"facts": 10}) == ""
    text = gap_section({"gap_facts": 1550, "recipe": {"gap_share": 0.4}})
    assert "1550 such facts" in text and "0.4 of the questions" in text and text.endswith("\n")
