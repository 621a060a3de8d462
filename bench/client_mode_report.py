"""The markdown report of bench/client_mode.py: every run's rows, the means with their ratios to the
baseline and the run-to-run spread, and the checks issue 23 asks for (speculation where it pays).

Spread of a figure = max / min - 1 over the runs of one system at one level (0 with one run). A
system is "not behind" another at a level when the ratio of their mean q/s is at least 1 - the larger
of their two spreads.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from bench._util import table

BASELINE = "vllm_loop"
#: issue 23: the service's defaults against the default client loop over vLLM's server.
SPEEDUP_WANTED = {1: 1.5, 16: 1.1}


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1 if values and min(values) > 0 else 0.0


def same_answers(rows: list[dict[str, Any]], other: list[dict[str, Any]]) -> tuple[int, int]:
    """Questions answered identically by two systems, run by run (same run number, same level)."""
    by_run = {(r["repeat"], r["concurrency"]): r["answers"] for r in other}
    same = total = 0
    for row in rows:
        theirs = by_run.get((row["repeat"], row["concurrency"]))
        if theirs is not None:
            same += sum(a == b for a, b in zip(row["answers"], theirs, strict=True))
            total += len(theirs)
    return same, total


def summarise(payload: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """(system, concurrency) -> means and spreads over the runs."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in payload["rows"]:
        groups[(row["system"], int(row["concurrency"]))].append(row)
    out = {}
    for key, rows in groups.items():
        qps = [r["questions_per_s"] for r in rows]
        p50 = [r["p50_s"] for r in rows]
        out[key] = {
            "runs": len(rows),
            "questions_per_s": statistics.fmean(qps),
            "p50_s": statistics.fmean(p50),
            "em": statistics.fmean(r["em"] for r in rows),
            "qps_spread": spread(qps),
            "p50_spread": spread([1 / v for v in p50 if v > 0]),
        }
    return out


def _load(row: dict[str, Any]) -> str:
    return f"{row['loadavg_start'][0]:.2f} -> {row['loadavg_end'][0]:.2f}"


def _acceptance(row: dict[str, Any]) -> str:
    drafted = row.get("draft_tokens")
    if drafted is None:
        return "n/a"
    return f"{row['accepted_tokens']:.0f} / {drafted:.0f}" if drafted else "0 / 0"


def _tokens(row: dict[str, Any]) -> str:
    """Per question: prompt tokens computed (not held by the prefix cache), then tokens generated."""
    if "prompt_tokens" not in row:
        return "n/a"
    n = row["questions"]
    return (
        f"{(row['prompt_tokens'] - row['prompt_tokens_cached']) / n:.0f} / {row['generation_tokens'] / n:.0f}"
    )


def criteria(payload: dict[str, Any], means: dict[tuple[str, int], dict[str, Any]]) -> list[str]:
    systems = set(payload["systems"])
    levels = sorted({c for _, c in means})
    lines = []
    if {"real", BASELINE} <= systems:
        for level, wanted in SPEEDUP_WANTED.items():
            if level in levels:
                ours, theirs = means[("real", level)], means[(BASELINE, level)]
                ratio = ours["questions_per_s"] / theirs["questions_per_s"]
                p50 = theirs["p50_s"] / ours["p50_s"]
                verdict = "yes" if ratio >= wanted and p50 >= wanted else "NO"
                lines.append(
                    f"- c={level}: `real` (defaults) / `{BASELINE}`: {ratio:.2f}x q/s, {p50:.2f}x p50 "
                    f"(wanted >= {wanted}x): {verdict}"
                )
    for loop in ("vllm_loop_ngram", "vllm_loop_ngram_iomp", "vllm_loop_suffix"):
        if not {"real", loop} <= systems:
            continue
        for level in levels:
            ours, theirs = means[("real", level)], means[(loop, level)]
            ratio = ours["questions_per_s"] / theirs["questions_per_s"]
            allowed = max(ours["qps_spread"], theirs["qps_spread"])
            verdict = "yes" if ratio >= 1 - allowed else "NO"
            runs = min(ours["runs"], theirs["runs"])
            note = "" if runs > 1 else " (one run: no spread measured)"
            lines.append(
                f"- c={level}: `real` / `{loop}` (same speculation): {ratio:.2f}x q/s, "
                f"run-to-run spread {allowed:.0%}{note}: not behind by more than the spread: {verdict}"
            )
    rows_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in payload["rows"]:
        rows_of[row["system"]].append(row)
    for name, other in (("real", BASELINE), ("real", "real_off"), ("vllm_loop_ngram", BASELINE)):
        if {name, other} <= systems:
            same, total = same_answers(rows_of[name], rows_of[other])
            lines.append(f"- same answer, `{name}` vs `{other}`: {same} / {total}")
    return lines


def report(payload: dict[str, Any]) -> str:
    means = summarise(payload)
    systems = list(payload["systems"])
    baseline = BASELINE if BASELINE in systems else systems[0]
    rows_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in payload["rows"]:
        rows_of[row["system"]].append(row)
    args = payload["args"]
    sizes = ", ".join(f"{level['questions']} questions at c={c}" for c, level in payload["levels"].items())
    end = payload.get("loadavg_end", [float("nan")])[0]
    head = [
        f"bench.client_mode: {len(systems)} systems; {sizes}; {args['dataset']}, max_tokens "
        f"{args['max_tokens']}, greedy, {args['repeat']} run(s) of each.",
        f"Load average (1 min) at the start {payload['loadavg_start'][0]:.2f}, at the end {end:.2f}; "
        f"wall time {payload.get('wall_s', 0) / 60:.1f} min.",
        "",
        "Systems: " + "; ".join(f"`{name}` = {label}" for name, label in payload["systems"].items()) + ".",
    ]
    every = [
        [
            row["repeat"],
            f"`{row['system']}`",
            row["concurrency"],
            row["questions"],
            row["questions_per_s"],
            row["p50_s"],
            row["p95_s"],
            row["em"],
            row["answered"],
            row["searches_per_q"],
            "{} / {}".format(*same_answers([row], rows_of[baseline])),
            _acceptance(row),
            _tokens(row),
            _load(row),
        ]
        for row in payload["rows"]
    ]
    summary = []
    for (name, level), m in sorted(means.items(), key=lambda item: (item[0][1], systems.index(item[0][0]))):
        base = means.get((baseline, level))
        summary.append(
            [
                f"`{name}`",
                level,
                m["runs"],
                m["questions_per_s"],
                m["questions_per_s"] / base["questions_per_s"] if base else float("nan"),
                m["p50_s"],
                m["p50_s"] / base["p50_s"] if base else float("nan"),
                m["em"],
                f"{m['qps_spread']:.0%}",
                f"{m['p50_spread']:.0%}",
            ]
        )
    return "\n".join(
        [
            *head,
            "",
            "Every run (same answer: as the baseline's in the same run, question by question):",
            "",
            table(
                [
                    "run",
                    "system",
                    "c",
                    "questions",
                    "q/s",
                    "p50 s",
                    "p95 s",
                    "EM",
                    "answered",
                    "searches/q",
                    f"same answer as `{baseline}`",
                    "accepted / draft tokens",
                    "prefilled / generated tokens per q",
                    "load avg start -> end",
                ],
                every,
            ),
            "",
            f"Means over the runs, ratios to `{baseline}`, run-to-run spread (max/min - 1):",
            "",
            table(
                [
                    "system",
                    "c",
                    "runs",
                    "q/s",
                    "q/s ratio",
                    "p50 s",
                    "p50 ratio",
                    "EM",
                    "q/s spread",
                    "p50 spread",
                ],
                summary,
            ),
            "",
            "Issue 23's checks:",
            "",
            *criteria(payload, means),
        ]
    )
