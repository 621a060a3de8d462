"""What went wrong where: the figures behind EM on a question set that says what each question is about.

For sets whose rows carry ``subject`` (the entity the question is about) and ``popularity``
(``well-known`` / ``less-known``), as bench/data/natural-*.jsonl do:
- the share of first queries that name the subject (a bare relation such as "author" does not);
- reading failures: a real search returned a gold answer, yet the answer is wrong; and where that
  answer was (the first result's lead sentence, a later sentence of it, a lower result);
- every figure per popularity group as well as over the whole set.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "and",
        "or",
        "by",
        "with",
        "from",
        "is",
        "was",
        "are",
        "were",
        "what",
        "who",
        "which",
        "where",
        "when",
        "how",
        "its",
        "it",
        "this",
        "that",
    ]
)


def content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if w not in _STOP and (len(w) > 2 or w.isdigit())]


def names_subject(query: str, subject: str) -> bool:
    """Whether a query names the subject: at least half of the subject's content words (at least
    one) appear in it, a word matching when it is spelt alike (difflib ratio >= 0.8)."""
    wanted = content_words(subject)
    have = content_words(query)
    if not wanted or not have:
        return False
    found = sum(any(difflib.SequenceMatcher(None, w, h).ratio() >= 0.8 for h in have) for w in wanted)
    return found >= max(1, (len(wanted) + 1) // 2)


def read_subjects(dataset: Path) -> dict[str, dict[str, str]]:
    """id -> {"subject", "popularity"} of a JSONL set (rows without them are left out)."""
    out: dict[str, dict[str, str]] = {}
    for line in dataset.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("subject"):
                out[str(row["id"])] = {
                    "subject": str(row["subject"]),
                    "popularity": str(row.get("popularity") or "all"),
                }
    return out


def _figures(rows: list[dict[str, Any]], subjects: dict[str, dict[str, str]]) -> dict[str, Any]:
    n = len(rows)
    searched = [r for r in rows if r.get("queries")]
    named = [r for r in searched if names_subject(r["queries"][0], subjects[r["id"]]["subject"])]
    real_gold = [
        r for r in rows if any(i["source"] == "real" and i["has_gold"] for i in r.get("information", []))
    ]
    misread = [r for r in real_gold if not r["em"]]
    found = [_gold_at(r) for r in misread]
    where = [w for w in found if w is not None]
    return {
        "questions": n,
        "em": 100 * sum(r["em"] for r in rows) / n,
        "answered": 100 * sum(bool(r["answered"]) for r in rows) / n,
        "searched": 100 * len(searched) / n,
        "first_query_names_subject": 100 * len(named) / len(searched) if searched else None,
        "gold_in_real_results": 100 * len(real_gold) / n,
        "reading_failures": len(misread),
        # By where the gold answer was: the first result's lead sentence, a later sentence of it, a
        # lower result (None: results written before the runner recorded it).
        "misread_where": None
        if len(where) < len(found)
        else {
            "first result, first sentence": sum(w == (1, 1) for w in where),
            "first result, later sentence": sum(w[0] == 1 and w[1] > 1 for w in where),
            "lower result": sum(w[0] > 1 for w in where),
        },
    }


def _gold_at(row: dict[str, Any]) -> tuple[int, int] | None:
    """(result, sentence) of the first real search's gold answer in a row with one, if recorded."""
    first = next(i for i in row["information"] if i["source"] == "real" and i["has_gold"])
    at = first.get("gold_at")
    return (int(at[0]), int(at[1])) if at else None


def diagnose(results: Iterable[dict[str, Any]], subjects: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Figures per (mode, popularity group) and per mode over all, for the rows whose id has a subject."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in results:
        if row.get("error") is None and row["id"] in subjects:
            groups[(row["mode"], subjects[row["id"]]["popularity"])].append(row)
            groups[(row["mode"], "all")].append(row)
    return [
        {"mode": mode, "group": group, **_figures(rows, subjects)}
        for (mode, group), rows in sorted(groups.items())
    ]


def markdown(table: list[dict[str, Any]]) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [
        "| mode | group | questions | EM % | answered % | first query names the subject % | "
        "gold in real results % | reading failures | ...gold in result 1's first sentence / a later one / "
        "result 2-3 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table:
        where = row.get("misread_where")
        lines.append(
            f"| {row['mode']} | {row['group']} | {row['questions']} | {pct(row['em'])} | "
            f"{pct(row['answered'])} | {pct(row['first_query_names_subject'])} | "
            f"{pct(row['gold_in_real_results'])} | {row['reading_failures']} | "
            f"{' / '.join(str(n) for n in where.values()) if where else '-'} |"
        )
    return "\n".join(lines) + "\n"
