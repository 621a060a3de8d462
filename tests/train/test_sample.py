"""train.sample: a sampled trajectory cut into what the model wrote (trained) and what the loop
injected (masked), located by the information spans the service reports; samples saved and read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.agent.prompts import PRESETS, ObservationFormat
from service.search.base import Doc
from train.sample import Sampled, SampleSettings, chosen, load_samples, read_rank, save_samples, segments_of

OBSERVATION = PRESETS["ssrl-smollm2"]


def _trajectory(observation: ObservationFormat) -> tuple[str, list[tuple[int, int]], str]:
    """A trajectory as the loop builds it: model text, then the observation appended after
    ``</search>``, then more model text; with the information span the service would report."""
    head = "<think> The question asks for the capital. </think>\n<search> Kenya capital </search>"
    injected = observation.render([Doc("Nairobi", "Nairobi is the capital of Kenya.", None)])
    tail = "<think> Doc 1 says Nairobi. </think>\n<answer> Nairobi </answer>"
    text = head + injected + tail
    start = text.index("<information>")
    end = text.index("</information>") + len("</information>")
    return text, [(start, end)], injected


def test_the_injected_observation_is_masked_and_the_rest_is_trained() -> None:
    text, spans, injected = _trajectory(OBSERVATION)
    segments = segments_of(text, spans, OBSERVATION)
    assert "".join(s.text for s in segments) == text
    masked = [s.text for s in segments if not s.trained]
    assert masked == [injected]  # the wrapper's text around the block is masked with it
    trained = "".join(s.text for s in segments if s.trained)
    assert "Nairobi is the capital" not in trained and trained.endswith("<answer> Nairobi </answer>")


def test_a_span_that_is_not_an_information_block_is_refused() -> None:
    text, spans, _ = _trajectory(OBSERVATION)
    start, end = spans[0]
    with pytest.raises(ValueError):
        segments_of(text, [(start + 1, end)], OBSERVATION)
    with pytest.raises(ValueError):
        segments_of(text, [(start, len(text) + 5)], OBSERVATION)


def test_without_real_searches_everything_is_trained() -> None:
    segments = segments_of("<answer> Paris </answer>", [], OBSERVATION)
    assert [(s.text, s.trained) for s in segments] == [("<answer> Paris </answer>", True)]


def test_samples_are_read_back_only_under_the_same_settings(tmp_path: Path) -> None:
    path = tmp_path / "own.samples.jsonl"
    sampled = {"q1": [Sampled("text", "Nairobi", "answer", 0, [(3, 9)])], "q2": []}
    save_samples(path, {"adapter": "a", "seed": 1}, sampled)
    assert load_samples(path, {"adapter": "a", "seed": 1}) == {"q1": sampled["q1"]}
    assert load_samples(path, {"adapter": "a", "seed": 2}) is None
    assert load_samples(tmp_path / "missing.jsonl", {"adapter": "a", "seed": 1}) is None


def _read(docs: list[Doc], answer: str) -> Sampled:
    """An exact trajectory that read ``docs`` and answered ``answer``."""
    head = "<search> Kenya capital </search>"
    text = head + OBSERVATION.render(docs) + f"<answer> {answer} </answer>"
    start, end = text.index("<information>"), text.index("</information>") + len("</information>")
    return Sampled(text, answer, "answer", 0, [(start, end)])


KENYA = Doc("Mount Kenya", "Mount Kenya is the highest mountain in Kenya.", None)
NAIROBI = Doc("Nairobi", "Nairobi is the capital of Kenya.", None)


def test_read_rank_is_the_first_result_holding_the_answer() -> None:
    assert read_rank(_read([KENYA, NAIROBI], "Nairobi"), ["Nairobi"]) == 2
    assert read_rank(_read([NAIROBI, KENYA], "Nairobi"), ["Nairobi"]) == 1
    assert read_rank(_read([KENYA], "Nairobi"), ["Nairobi"]) is None
    assert read_rank(Sampled("<answer> Nairobi </answer>", "Nairobi", "answer", 0, []), ["Nairobi"]) is None


def test_chosen_skips_easy_questions_and_prefers_reading_below_the_first() -> None:
    first, second = _read([NAIROBI, KENYA], "Nairobi"), _read([KENYA, NAIROBI], "Nairobi")
    settings = SampleSettings(adapter=Path("a"), output=Path("o.jsonl"), keep_per_question=1)
    assert chosen([first, second], ["Nairobi"], settings) == [first]
    preferring = settings.model_copy(update={"prefer_below_first": True})
    assert chosen([first, second], ["Nairobi"], preferring) == [second]
    hard_only = settings.model_copy(update={"solved_at_most": 1})
    assert chosen([first, second], ["Nairobi"], hard_only) == []
    assert chosen([first], ["Nairobi"], hard_only) == [first]
