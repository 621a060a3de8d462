"""Instruction templates and per-checkpoint observation formats (shared/SSRL.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.agent.tags import neutralise
from service.engine.base import ChatMessageDict
from service.search.base import Doc

#: The Search-R1 instruction, as published; SSRL checkpoints were trained on it.
SEARCH_R1_INSTRUCTION = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every "
    "time you get new information. After reasoning, if you find you lack some knowledge, you can call a "
    "search engine by <search> query </search> and it will return the top searched results between "
    "<information> and </information>. You can search as many times as your want. If you find no "
    "further external knowledge needed, you can directly provide the answer inside <answer> and "
    "</answer>, without detailed illustrations. For example, <answer> Beijing </answer>. "
    "Question: {question}\n"
)

#: The self-search variant: the model is asked to write the search results itself. SSRL's exact
#: wording is not public outside its dataset; set ``agent.self_instruction`` to override.
SELF_SEARCH_INSTRUCTION = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every "
    "time you get new information. After reasoning, if you find you lack some knowledge, you can call a "
    "search engine by <search> query </search>, and then write the top searched results yourself "
    "between <information> and </information>. You can search as many times as your want. If you find "
    "no further external knowledge needed, you can directly provide the answer inside <answer> and "
    "</answer>, without detailed illustrations. For example, <answer> Beijing </answer>. "
    "Question: {question}\n"
)

NO_RESULTS = "No information available"

ResultStyle = Literal["dash", "numbered", "space", "doc"]


@dataclass(frozen=True)
class ObservationFormat:
    """How search results are joined and wrapped before they are appended to the trajectory."""

    style: ResultStyle
    wrapper: str

    def render(self, docs: Sequence[Doc] | None) -> str:
        return self.wrapper.format(results=self.join(docs))

    def join(self, docs: Sequence[Doc] | None) -> str:
        if not docs:
            return NO_RESULTS
        if self.style == "dash":
            return "\n".join(f"- {_one_line(d.text)}" for d in docs)
        if self.style == "numbered":
            return "\n".join(f"{i}. {_one_line(d.text)}" for i, d in enumerate(docs, 1))
        if self.style == "space":
            return " ".join(_one_line(d.text) for d in docs)
        return "\n".join(f"Doc {i}: {_titled(d)}" for i, d in enumerate(docs, 1))


def _titled(doc: Doc) -> str:
    """A document's title and text on one line (a result sent as plain text has no title)."""
    return " ".join(part for part in (_one_line(doc.title), _one_line(doc.text)) if part)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def clip_words(text: str, words: int) -> str:
    """The first ``words`` words of a result (0: all of it)."""
    if words <= 0:
        return text
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]) + " ..."


def clean_results(docs: Sequence[Doc], top_k: int, words: int) -> list[Doc]:
    """Search results as the trajectory shows them: the first ``top_k``, protocol tags removed,
    each clipped to ``words`` words. The loop and the training data both go through here."""
    return [
        Doc(neutralise(d.title), clip_words(neutralise(d.text), words), d.url, d.score) for d in docs[:top_k]
    ]


def agent_messages(
    question: str, template: str, system: Sequence[ChatMessageDict] = ()
) -> list[ChatMessageDict]:
    """The chat an agent trajectory answers: system messages kept, the question inside the
    instruction template as the one user message."""
    return [*system, {"role": "user", "content": template.replace("{question}", question.strip())}]


_WIDE = "\n\n<information>\n{results}\n</information>\n\n"

#: Observation formats used in the paper, by checkpoint; ``search-r1`` is the default.
PRESETS: dict[str, ObservationFormat] = {
    "qwen2.5-7b": ObservationFormat("dash", _WIDE),
    "llama-3.2-3b": ObservationFormat("numbered", _WIDE),
    "llama-3.1-8b": ObservationFormat("numbered", "\n<information>\n{results}\n</information>\n"),
    "qwen2.5-3b": ObservationFormat("space", "<information>{results}</information>"),
    "search-r1": ObservationFormat("doc", "\n\n<information>{results}</information>\n\n"),
    # The small SSRL model trained here (train/): Search-R1's numbered documents with their titles
    # (a 135M model leans on them), inside the wide wrapper of the released checkpoints.
    "ssrl-smollm2": ObservationFormat("doc", _WIDE),
}

_MATCHERS = (
    ("ssrl-smollm2", ("ssrl-smollm2",)),
    ("qwen2.5-7b", ("qwen2.5-7b",)),
    ("qwen2.5-3b", ("qwen2.5-3b",)),
    ("llama-3.1-8b", ("llama-3.1-8b",)),
    ("llama-3.2-3b", ("llama-3.2-3b",)),
)


def preset_for_model(model: str) -> str:
    """The preset matching a model name or path (case-insensitive), else ``search-r1``."""
    name = model.lower().replace("_", "-")
    for preset, needles in _MATCHERS:
        if any(n in name for n in needles):
            return preset
    return "search-r1"


def load_template(value: str | None, default: str) -> str:
    """A template given as a string or as the path of a file holding it (``{question}`` inside)."""
    if value is None:
        return default
    path = Path(value).expanduser()
    template = path.read_text() if len(value) < 4096 and path.is_file() else value
    if "{question}" not in template:
        raise ValueError("an instruction template must contain {question}")
    return template
