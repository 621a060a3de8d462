"""Instruction templates and per-checkpoint observation formats (shared/SSRL.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
        return "\n".join(f"Doc {i}: {_one_line(d.title)} {_one_line(d.text)}" for i, d in enumerate(docs, 1))


def _one_line(text: str) -> str:
    return " ".join(text.split())


_WIDE = "\n\n<information>\n{results}\n</information>\n\n"

#: Observation formats used in the paper, by checkpoint; ``search-r1`` is the default.
PRESETS: dict[str, ObservationFormat] = {
    "qwen2.5-7b": ObservationFormat("dash", _WIDE),
    "llama-3.2-3b": ObservationFormat("numbered", _WIDE),
    "llama-3.1-8b": ObservationFormat("numbered", "\n<information>\n{results}\n</information>\n"),
    "qwen2.5-3b": ObservationFormat("space", "<information>{results}</information>"),
    "search-r1": ObservationFormat("doc", "\n\n<information>{results}</information>\n\n"),
}

_MATCHERS = (
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
