"""Per-mode aggregates of an eval results file, as a markdown table and a plot; for a sampled run
(``--samples K``), pass@k, maj@k and answered@k by k as a table and a plot."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.passk import QuestionCurve, Vote, ks_up_to, mean_curve, question_curve
from evals.scoring import normalize_answer


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


# -- sampled runs (--samples K): pass@k, maj@k, answered@k ----------------------------------------
@dataclass(frozen=True)
class SampledSummary:
    mode: str
    questions: int
    samples: int
    #: pass@k, maj@k and answered@k averaged over the questions (None: no question answered).
    curve: QuestionCurve | None
    answered: float
    searches: float
    real_calls: float
    tokens: float
    cached_share: float
    latency_p50: float
    latency_p95: float
    errors: int


def votes_of(row: dict[str, Any]) -> list[Vote]:
    """A results line's samples as votes: the normalised answer (None when it normalises to nothing)."""
    votes = []
    for sample in row["samples"]:
        answer = normalize_answer(sample["answer"] or "") or None
        votes.append(Vote(answer, bool(sample["em"]) and answer is not None))
    return votes


def summarise_samples(
    rows: Iterable[dict[str, Any]], modes: Sequence[str], samples: int
) -> list[SampledSummary]:
    """Per mode: the curves averaged over questions, and per-trajectory costs. A question whose
    request failed (or came back with another number of samples) counts as an error."""
    by_mode: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for row in rows:
        by_mode.setdefault(row["mode"], []).append(row)
    ks = ks_up_to(samples)
    out = []
    for mode, items in by_mode.items():
        done = [r for r in items if r.get("error") is None and len(r["samples"]) == samples]
        trajectories = [s for r in done for s in r["samples"]] or [{}]
        n = len(trajectories) if done else 1
        prompt = sum(r["prompt_tokens"] for r in done)
        latencies = [r["latency_s"] for r in done]
        out.append(
            SampledSummary(
                mode=mode,
                questions=len(done),
                samples=samples,
                curve=mean_curve([question_curve(votes_of(r), ks) for r in done]) if done else None,
                answered=100 * sum(s.get("answered", False) for s in trajectories) / n,
                searches=sum(s.get("searches", 0) for s in trajectories) / n,
                real_calls=sum(s.get("real_calls", 0) for s in trajectories) / n,
                tokens=sum(r["tokens"] for r in done) / n,
                cached_share=100 * sum(r["cached_tokens"] for r in done) / prompt if prompt else 0.0,
                latency_p50=_percentile(latencies, 50),
                latency_p95=_percentile(latencies, 95),
                errors=len(items) - len(done),
            )
        )
    return out


def markdown_samples(summaries: Sequence[SampledSummary], title: str) -> str:
    ks = ks_up_to(summaries[0].samples) if summaries else [1]
    lines = [
        f"## {title}",
        "",
        "| mode | questions | metric | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|---|---|" + "---|" * len(ks),
    ]
    for s in summaries:
        curve = s.curve
        for name, values in (
            ("pass@k %", curve.pass_at if curve else None),
            ("maj@k %", curve.maj_at if curve else None),
            ("answered@k %", curve.answered_at if curve else None),
        ):
            cells = " | ".join(f"{100 * v:.1f}" for v in values) if values else " | ".join("-" for _ in ks)
            lines.append(f"| {s.mode} | {s.questions} | {name} | {cells} |")
    lines += [
        "",
        "| mode | trajectories | answered % | searches / traj | real searches / traj | tokens / traj "
        "| prompt tokens cached % | s / question p50 | p95 | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.mode} | {s.questions * s.samples} | {s.answered:.1f} | {s.searches:.2f} | "
            f"{s.real_calls:.2f} | {s.tokens:.0f} | {s.cached_share:.1f} | {s.latency_p50:.2f} | "
            f"{s.latency_p95:.2f} | {s.errors} |"
        )
    return "\n".join(lines) + "\n"


def plot_samples(summaries: Sequence[SampledSummary], path: Path, title: str) -> None:
    """pass@k (solid) and maj@k (dashed) against k on a log2 axis, one colour per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(figsize=(6.5, 4))
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b2"]
    for colour, s in zip(colours * 2, summaries, strict=False):
        if s.curve is None:
            continue
        ks = list(s.curve.ks)
        axes.plot(ks, [100 * v for v in s.curve.pass_at], "-o", color=colour, label=f"{s.mode} pass@k")
        axes.plot(ks, [100 * v for v in s.curve.maj_at], "--s", color=colour, label=f"{s.mode} maj@k")
    ks = ks_up_to(summaries[0].samples) if summaries else [1]
    axes.set_xscale("log", base=2)
    axes.set_xticks(ks, [str(k) for k in ks])
    axes.set_xlabel("k (samples)")
    axes.set_ylabel("% of questions")
    top = max((100 * v for s in summaries if s.curve for v in s.curve.pass_at), default=0.0)
    axes.set_ylim(0, min(100.0, max(10.0, 1.2 * top)))
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
