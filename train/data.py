"""The data set: facts from the corpus, split by article, and the training trajectories.

Writes ``{train,dev,test}.jsonl`` in ``ssrl-eval``'s format (``{"id", "question",
"golden_answers"}``) and ``trajectories.jsonl``. The split is by article: no article of the dev or
test set is seen in training, in any phrasing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from evals.datasets import load_fanoutqa_dev
from evals.scoring import normalize_answer
from service.search.corpus import embedded_corpus_path
from service.search.local import LocalIndex
from train.qa import QA, Fact, facts_of, phrase
from train.trajectories import Builder, Trajectory, vague_queries

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
#: Facts a small instruct model may know without searching: the "direct answer" kind uses these.
COMMON_KINDS = ("capital", "symbol", "atomic_number")


@dataclass(frozen=True)
class Mix:
    """Shares of trajectory kinds, and of description (title-answer) questions."""

    real: float = 0.30
    real_twice: float = 0.18
    hybrid: float = 0.10
    self: float = 0.35
    direct: float = 0.07
    description: float = 0.25

    def kinds(self) -> tuple[list[str], list[float]]:
        names = ["real", "real_twice", "hybrid", "self", "direct"]
        return names, [getattr(self, n) for n in names]


def split_of(title: str, dev: float = 0.1, test: float = 0.2) -> str:
    """Stable split of an article by the hash of its title."""
    bucket = int(hashlib.sha256(title.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test else "dev" if bucket < test + dev else "train"


def all_facts(index: LocalIndex, result_words: int) -> list[Fact]:
    meta = {}
    for key, entry in json.loads(embedded_corpus_path().read_text(encoding="utf-8")).items():
        if isinstance(entry, dict):
            meta[str(entry.get("title") or key).strip()] = entry
    facts: list[Fact] = []
    for doc in index.docs:
        entry = meta.get(doc.title, {})
        facts.extend(
            facts_of(doc, str(entry.get("description") or ""), str(entry.get("topic") or ""), result_words)
        )
    return facts


def _qa(fact: Fact, n: int, rng: random.Random) -> QA:
    digest = hashlib.sha1(f"{fact.article}|{fact.kind}".encode()).hexdigest()[:10]
    return QA(f"{fact.kind}-{digest}-{n}", phrase(fact, rng), fact.answers, fact)


def eval_items(facts: list[Fact], rng: random.Random, description_share: float) -> list[QA]:
    """One question per fact, description questions capped at ``description_share`` of the set."""
    plain = [f for f in facts if f.kind != "description"]
    titles = [f for f in facts if f.kind == "description"]
    rng.shuffle(titles)
    keep = int(len(plain) * description_share / (1 - description_share))
    chosen = plain + titles[:keep]
    rng.shuffle(chosen)
    return [_qa(f, 0, rng) for f in chosen]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def build_dataset(
    index: LocalIndex,
    builder: Builder,
    out: Path,
    *,
    trajectories: int,
    seed: int,
    mix: Mix,
    result_words: int,
) -> dict[str, object]:
    """Write the splits and ``trajectories`` training trajectories; return counts for the card."""
    rng = random.Random(seed)
    facts = all_facts(index, result_words)
    by_split: dict[str, list[Fact]] = {s: [] for s in SPLITS}
    for fact in facts:
        by_split[split_of(fact.article)].append(fact)
    stats: dict[str, object] = {}
    for split in ("dev", "test"):
        items = eval_items(by_split[split], rng, mix.description)
        write_jsonl(out / f"{split}.jsonl", [_eval_row(q) for q in items])
        stats[f"{split}_questions"] = len(items)

    fanout = {normalize_answer(item.question) for item in load_fanoutqa_dev()}
    train_facts = [f for f in by_split["train"] if f.kind != "description"]
    titles = [f for f in by_split["train"] if f.kind == "description"]
    builder.prefetch([q for f in by_split["train"] for q in (*f.queries, *vague_queries(f))])
    names, weights = mix.kinds()
    # Quotas per kind: drawing a kind per attempt would under-represent the kinds the index can
    # support less often (a two-search trajectory needs a query that misses and one that hits).
    quota = {n: round(w / sum(weights) * trajectories) for n, w in zip(names, weights, strict=True)}
    quota["self"] += trajectories - sum(quota.values())
    common = [f for f in train_facts if f.kind in COMMON_KINDS]
    if not common:
        quota["self"] += quota["direct"]
        quota["direct"] = 0
    made: list[Trajectory] = []
    asked: list[QA] = []
    kinds: Counter[str] = Counter()
    progress = tqdm(total=trajectories, desc="trajectories", unit="traj")
    attempts = 0
    while len(made) < trajectories and attempts < trajectories * 20:
        attempts += 1
        open_kinds = [n for n in names if kinds[n] < quota[n]]
        kind = rng.choices(open_kinds, [quota[n] - kinds[n] for n in open_kinds])[0]
        if kind == "direct":
            fact = rng.choice(common)
        else:
            fact = rng.choice(titles if rng.random() < mix.description else train_facts)
        qa = _qa(fact, attempts, rng)
        if normalize_answer(qa.question) in fanout:
            continue
        queries = [q.lower() if rng.random() < 0.4 else q for q in fact.queries]
        builder.prefetch(queries)
        trajectory = builder.build(kind, qa, rng, queries)
        if trajectory is None:
            continue
        made.append(trajectory)
        asked.append(qa)
        kinds[kind] += 1
        progress.update(1)
    progress.close()
    write_jsonl(out / "trajectories.jsonl", [t.to_json() for t in made])
    write_jsonl(out / "train.jsonl", [_eval_row(q) for q in asked])
    stats.update(
        facts=len(facts),
        train_facts=len(by_split["train"]),
        trajectories=len(made),
        kinds=dict(kinds),
        description_share=round(sum(q.fact.kind == "description" for q in asked) / max(len(asked), 1), 3),
    )
    logger.info("data: %s", stats)
    return stats


def _eval_row(qa: QA) -> dict[str, object]:
    return {"id": qa.id, "question": qa.question, "golden_answers": list(qa.answers), "kind": qa.fact.kind}


def read_trajectories(path: Path) -> list[Trajectory]:
    with path.open(encoding="utf-8") as handle:
        return [Trajectory.from_json(json.loads(line)) for line in handle if line.strip()]
