"""QA sets: JSONL in the Search-R1/FlashRAG forms, and the embedded fanoutqa dev questions."""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FANOUTQA_DEV = Path("data") / "fanout-final-dev.json"


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    golden_answers: tuple[str, ...]


class DatasetError(RuntimeError):
    """The dataset cannot be read at all."""


def _answers(row: dict[str, Any]) -> tuple[str, ...]:
    value = row["golden_answers"] if "golden_answers" in row else row["answer"]
    values = value if isinstance(value, list) else [value]
    answers = tuple(str(v) for v in values if isinstance(v, str | int | float) and str(v).strip())
    if not answers:
        raise ValueError("no usable gold answer")
    return answers


def load_jsonl(path: Path) -> tuple[list[QAItem], list[tuple[int, str]]]:
    """Items of ``{"question", "golden_answers"}`` or ``{"question", "answer"}`` lines, and the bad
    lines as (line number, reason): they are skipped, never silently."""
    items: list[QAItem] = []
    bad: list[tuple[int, str]] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                question = row["question"]
                if not isinstance(question, str) or not question.strip():
                    raise ValueError("empty question")
                item_id = str(row.get("id", f"line-{number}"))
                if item_id in seen:
                    raise ValueError(f"duplicate id {item_id}")
                items.append(QAItem(item_id, question.strip(), _answers(row)))
                seen.add(item_id)
            except (ValueError, KeyError, TypeError) as exc:
                reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
                bad.append((number, reason))
    for number, reason in bad:
        logger.warning("%s:%d skipped: %s", path, number, reason)
    if not items:
        raise DatasetError(f"{path} holds no usable question")
    return items, bad


def fanoutqa_path() -> Path:
    spec = importlib.util.find_spec("fanoutqa")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / FANOUTQA_DEV
        if candidate.is_file():
            return candidate
    raise DatasetError("the embedded dataset needs the fanoutqa package: pip install --no-deps fanoutqa")


def load_fanoutqa_dev() -> list[QAItem]:
    """The single-hop sub-questions of fanoutqa's dev set whose answer is one value (string or
    number): factoid questions, each answered by one Wikipedia article."""
    data = json.loads(fanoutqa_path().read_text(encoding="utf-8"))
    items: list[QAItem] = []

    def walk(node: dict[str, Any]) -> None:
        for sub in node.get("decomposition") or []:
            if sub.get("decomposition"):
                walk(sub)
            elif isinstance(sub.get("answer"), str | int | float) and not isinstance(sub.get("answer"), bool):
                items.append(QAItem(str(sub["id"]), sub["question"].strip(), (str(sub["answer"]),)))

    for question in data:
        walk(question)
    return items


def load_dataset(path: Path | None) -> tuple[list[QAItem], list[tuple[int, str]]]:
    if path is None:
        return load_fanoutqa_dev(), []
    if not path.is_file():
        raise DatasetError(f"dataset {path} does not exist")
    return load_jsonl(path)
