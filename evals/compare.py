"""Two or more `ssrl-eval` runs compared question by question: what changed, not only the rate.

    .venv/bin/python -m evals.compare bench/results/eval-natural-dev-r4 \\
        bench/results/eval-natural-dev-r4-rerun-a bench/results/eval-natural-dev-r10 [--mode real] [--list]

Each argument is a run's output folder (or its ``results.jsonl``); the first is the baseline. Rows
are matched by question id and mode. For each other run: EM of both on the questions they share,
the questions gained and lost (exact match turned on or off), the answers that differ in any way,
and the first search queries that differ. ``--list`` prints the gained and lost questions with
both answers. A rerun of the same model and settings shows how far batching alone moves a run
(docs/model-and-evaluation.md, "How far a rerun moves round 4").
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.runner import read_results


@dataclass
class Comparison:
    run: str
    questions: int
    base_em: float
    em: float
    gained: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    lost: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    answers_differ: int = 0
    first_queries_differ: int = 0


def results_path(path: Path) -> Path:
    return path / "results.jsonl" if path.is_dir() else path


def load(path: Path, mode: str) -> dict[str, dict[str, Any]]:
    """A run's rows of ``mode`` by question id; SystemExit if it has none."""
    file = results_path(path)
    rows = {row["id"]: row for row in read_results(file) if row["mode"] == mode}
    if not rows:
        raise SystemExit(f"{file}: no results in mode '{mode}'")
    return rows


def _first_query(row: dict[str, Any]) -> str | None:
    queries = row.get("queries") or []
    return queries[0] if queries else None


def compare(base: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]], run: str) -> Comparison:
    shared = [qid for qid in base if qid in other]
    if not shared:
        raise SystemExit(f"{run}: no question in common with the baseline")
    n = len(shared)
    result = Comparison(
        run=run,
        questions=n,
        base_em=100 * sum(base[q]["em"] for q in shared) / n,
        em=100 * sum(other[q]["em"] for q in shared) / n,
    )
    for qid in shared:
        before, after = base[qid], other[qid]
        if after["em"] > before["em"]:
            result.gained.append((before, after))
        elif after["em"] < before["em"]:
            result.lost.append((before, after))
        result.answers_differ += before.get("answer") != after.get("answer")
        result.first_queries_differ += _first_query(before) != _first_query(after)
    return result


def markdown(comparisons: list[Comparison], base: str, *, listing: bool = False) -> str:
    lines = [
        f"Against `{base}`:",
        "",
        "| run | questions | EM % (baseline) | EM % | gained | lost | answers differ "
        "| first queries differ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| `{c.run}` | {c.questions} | {c.base_em:.1f} | {c.em:.1f} | {len(c.gained)} | "
            f"{len(c.lost)} | {c.answers_differ} | {c.first_queries_differ} |"
        )
    if listing:
        for c in comparisons:
            for label, pairs in (("gained", c.gained), ("lost", c.lost)):
                lines += ["", f"`{c.run}`, {label}:"]
                lines += [
                    f"- {after['id']} {after['question']!r}: "
                    f"{before.get('answer')!r} -> {after.get('answer')!r}"
                    for before, after in pairs
                ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", type=Path, help="the baseline run (folder or results.jsonl)")
    parser.add_argument("runs", type=Path, nargs="+", help="the runs to compare with it")
    parser.add_argument("--mode", default="real", help="the search mode's rows to compare (default real)")
    parser.add_argument("--list", action="store_true", help="list the gained and lost questions")
    args = parser.parse_args(argv)
    base = load(args.base, args.mode)
    comparisons = [compare(base, load(run, args.mode), str(run)) for run in args.runs]
    print(markdown(comparisons, str(args.base), listing=args.list))
    return 0


if __name__ == "__main__":
    sys.exit(main())
