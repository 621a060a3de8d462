"""Per-mode aggregates of an eval results file, as a markdown table and a plot."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModeSummary:
    mode: str
    questions: int
    exact_match: float
    f1: float
    answer_rate: float
    well_formed: float
    real_calls: float
    searches: float
    #: Share of model-written / engine-written <information> blocks holding a gold answer (None: none).
    gold_in_self: float | None
    gold_in_real: float | None
    tokens: float
    latency_p50: float
    latency_p95: float
    errors: int


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarise(rows: Iterable[dict[str, Any]], modes: Sequence[str]) -> list[ModeSummary]:
    by_mode: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for row in rows:
        by_mode.setdefault(row["mode"], []).append(row)
    out = []
    for mode, items in by_mode.items():
        done = [r for r in items if r.get("error") is None]
        n = len(done) or 1
        latencies = [r["latency_s"] for r in done]
        out.append(
            ModeSummary(
                mode=mode,
                questions=len(done),
                exact_match=100 * sum(r["em"] for r in done) / n,
                f1=100 * sum(r["f1"] for r in done) / n,
                answer_rate=100 * sum(r["answered"] for r in done) / n,
                well_formed=100 * sum(r.get("well_formed", False) for r in done) / n,
                real_calls=sum(r["real_calls"] for r in done) / n,
                searches=sum(r.get("searches", 0) for r in done) / n,
                gold_in_self=_gold_share(done, "self"),
                gold_in_real=_gold_share(done, "real"),
                tokens=sum(r["tokens"] for r in done) / n,
                latency_p50=_percentile(latencies, 50),
                latency_p95=_percentile(latencies, 95),
                errors=len(items) - len(done),
            )
        )
    return out


def _gold_share(rows: Sequence[dict[str, Any]], source: str) -> float | None:
    found = [i["has_gold"] for r in rows for i in r.get("information", []) if i["source"] == source]
    return 100 * sum(found) / len(found) if found else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def batching_note(concurrency: int) -> str:
    """What to expect of greedy answers asked side by side, for a reader comparing modes."""
    return (
        f"Greedy decoding, up to {concurrency} question(s) in flight: vLLM batches concurrent requests and "
        "the batch changes the order of floating-point sums, so a question's greedy answer can differ "
        "between runs, in any mode. Compare modes by these aggregates, not question by question "
        '(docs/modes-and-protocol.md, "Greedy answers under batching").'
    )


def markdown(summaries: Sequence[ModeSummary], title: str, *, concurrency: int | None = None) -> str:
    lines = [f"## {title}", ""]
    if concurrency is not None:
        lines += [f"> {batching_note(concurrency)}", ""]
    lines += [
        "| mode | questions | EM % | F1 % | answered % | well-formed % | searches / q | real searches / q "
        "| gold in own info % | gold in real results % | tokens / q | latency p50 s | p95 s | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.mode} | {s.questions} | {s.exact_match:.1f} | {s.f1:.1f} | {s.answer_rate:.1f} | "
            f"{s.well_formed:.1f} | {s.searches:.2f} | {s.real_calls:.2f} | {_pct(s.gold_in_self)} | "
            f"{_pct(s.gold_in_real)} | {s.tokens:.0f} | {s.latency_p50:.2f} | {s.latency_p95:.2f} "
            f"| {s.errors} |"
        )
    return "\n".join(lines) + "\n"


def plot(summaries: Sequence[ModeSummary], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [s.mode for s in summaries]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.bar(modes, [s.exact_match for s in summaries], color="#4c72b0")
    left.set_ylim(0, max(10.0, 1.2 * max((s.exact_match for s in summaries), default=0.0)))
    left.set_ylabel("exact match (%)")
    left.set_title("EM by mode")
    right.bar(modes, [s.real_calls for s in summaries], color="#dd8452")
    right.set_ylim(0, max(1.0, 1.2 * max((s.real_calls for s in summaries), default=0.0)))
    right.set_ylabel("real searches per question")
    right.set_title("Real-search calls by mode")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
