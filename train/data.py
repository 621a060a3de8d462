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
from train.gaps import gap_facts
from train.qa import QA, Fact, facts_of, phrase
from train.trajectories import OWN_KIND, REAL_KINDS, Builder, Trajectory

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
#: Kinds whose answer is the article's own title (the question asks for the thing itself).
TITLE_KINDS = ("description", "lived")
#: The hand-written natural question sets: none of their articles (nor their subjects' articles)
#: is used in training.
HELD_OUT = tuple(
    Path(__file__).resolve().parent.parent / "bench" / "data" / f"natural-{s}.jsonl" for s in ("dev", "test")
)


@dataclass(frozen=True)
class Mix:
    """Shares of trajectory kinds, of description (title-answer) questions and of open-relation
    ones, how often a real search whose answer is the first result is kept (below 1: more answers
    read from the second or third result), and how often an answer quoted from a result's first
    sentence is kept."""

    real: float = 0.42
    real_twice: float = 0.14
    hybrid: float = 0.06
    self: float = 0.32
    chat: float = 0.06
    description: float = 0.15
    keep_first_rank: float = 0.45
    #: How often a trajectory whose quoted sentence is its result's first is kept (below 1: more
    #: answers read further into a result, where people's questions often find them).
    keep_first_sentence: float = 1.0
    #: Share of questions asking for what completes a sentence about the subject (``train.gaps``).
    gap: float = 0.0

    def kinds(self) -> tuple[list[str], list[float]]:
        names = ["real", "real_twice", "hybrid", "self", "chat"]
        return names, [getattr(self, n) for n in names]


def held_out_titles(paths: tuple[Path, ...] = HELD_OUT) -> set[str]:
    """Articles of the natural question sets, and their subjects where an article bears that name."""
    titles: set[str] = set()
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                titles.update(str(row[k]) for k in ("article", "subject") if row.get(k))
    return {t.lower() for t in titles}


def split_of(title: str, dev: float = 0.1, test: float = 0.2) -> str:
    """Stable split of an article by the hash of its title."""
    bucket = int(hashlib.sha256(title.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test else "dev" if bucket < test + dev else "train"


def trainable(fact: Fact, held_out: set[str]) -> bool:
    """A fact that may be trained on: its article is in the training split, and neither its article
    nor its subject is one of the natural sets' (``held_out_titles``)."""
    return (
        split_of(fact.article) == "train"
        and fact.article.lower() not in held_out
        and fact.subject.lower() not in held_out
    )


def _corpus_meta() -> dict[str, dict[str, object]]:
    meta = {}
    for key, entry in json.loads(embedded_corpus_path().read_text(encoding="utf-8")).items():
        if isinstance(entry, dict):
            meta[str(entry.get("title") or key).strip()] = entry
    return meta


def all_facts(
    index: LocalIndex, result_words: int, meta: dict[str, dict[str, object]] | None = None
) -> list[Fact]:
    meta = _corpus_meta() if meta is None else meta
    facts: list[Fact] = []
    for doc in index.docs:
        entry = meta.get(doc.title, {})
        facts.extend(
            facts_of(doc, str(entry.get("description") or ""), str(entry.get("topic") or ""), result_words)
        )
    return facts


def all_gap_facts(
    index: LocalIndex, result_words: int, meta: dict[str, dict[str, object]] | None = None
) -> list[Fact]:
    """Open-relation facts of every article (``train.gaps``): training questions only."""
    meta = _corpus_meta() if meta is None else meta
    return [
        fact
        for doc in index.docs
        for fact in gap_facts(doc, str(meta.get(doc.title, {}).get("topic") or ""), result_words)
    ]


def _qa(fact: Fact, n: int, rng: random.Random) -> QA:
    digest = hashlib.sha1(f"{fact.article}|{fact.kind}|{fact.subject}".encode()).hexdigest()[:10]
    question, subject, clean = phrase(fact, rng)
    return QA(f"{fact.kind}-{digest}-{n}", question, fact.answers, fact, subject, clean)


def eval_items(facts: list[Fact], rng: random.Random, description_share: float) -> list[QA]:
    """One question per fact, description questions capped at ``description_share`` of the set."""
    plain = [f for f in facts if f.kind not in TITLE_KINDS]
    titles = [f for f in facts if f.kind in TITLE_KINDS]
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
    meta = _corpus_meta()
    facts = all_facts(index, result_words, meta)
    by_split: dict[str, list[Fact]] = {s: [] for s in SPLITS}
    for fact in facts:
        by_split[split_of(fact.article)].append(fact)
    stats: dict[str, object] = {}
    for split in ("dev", "test"):
        items = eval_items(by_split[split], rng, mix.description)
        write_jsonl(out / f"{split}.jsonl", [_eval_row(q) for q in items])
        stats[f"{split}_questions"] = len(items)

    fanout = {normalize_answer(item.question) for item in load_fanoutqa_dev()}
    held_out = held_out_titles()
    train_all = [f for f in by_split["train"] if trainable(f, held_out)]
    families = _families([f for f in train_all if f.kind not in TITLE_KINDS])
    family_names = sorted(families)
    # Relations drawn alike (by the square root of their number of facts, up to 60): the common
    # ones (nationality, population) do not crowd out those people ask most (who wrote, when).
    family_weights = [min(len(families[n]), 60) ** 0.5 for n in family_names]
    titles = [f for f in train_all if f.kind in TITLE_KINDS]
    gaps = [f for f in all_gap_facts(index, result_words, meta) if trainable(f, held_out)] if mix.gap else []
    names, weights = mix.kinds()
    # Quotas per kind: drawing a kind per attempt would under-represent the kinds the index can
    # support less often (a two-search trajectory needs a query that misses and one that hits).
    quota = {n: round(w / sum(weights) * trajectories) for n, w in zip(names, weights, strict=True)}
    quota["self"] += trajectories - sum(quota.values())
    made: list[Trajectory] = []
    asked: list[QA] = []
    kinds: Counter[str] = Counter()
    progress = tqdm(total=trajectories, desc="trajectories", unit="traj")
    attempts = 0
    while len(made) < trajectories and attempts < trajectories * 20:
        attempts += 1
        open_kinds = [n for n in names if kinds[n] < quota[n]]
        kind = rng.choices(open_kinds, [quota[n] - kinds[n] for n in open_kinds])[0]
        if kind == "chat":
            made.append(builder.chat(rng, attempts))
            kinds[kind] += 1
            progress.update(1)
            continue
        if gaps and rng.random() < mix.gap:
            fact = rng.choice(gaps)
        elif rng.random() < mix.description:
            fact = rng.choice(titles)
        else:
            fact = rng.choice(families[rng.choices(family_names, family_weights)[0]])
        qa = _qa(fact, attempts, rng)
        if normalize_answer(qa.question) in fanout:
            continue
        trajectory = builder.build(kind, qa, rng)
        if trajectory is None:
            continue
        if kind in REAL_KINDS and trajectory.ranks == (1,) and rng.random() > mix.keep_first_rank:
            continue
        # Drawn only below 1, so that the data of the default mix is what it was for a seed.
        if (
            mix.keep_first_sentence < 1
            and trajectory.sentence == 1
            and rng.random() > mix.keep_first_sentence
        ):
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
        train_facts=len(train_all),
        **({"gap_facts": len(gaps)} if mix.gap else {}),
        held_out_articles=len(held_out),
        trajectories=len(made),
        kinds=dict(kinds),
        relations=dict(Counter(q.fact.kind for q in asked).most_common()),
        answer_rank=answer_ranks(made),
        answer_sentence=answer_sentences(made),
        description_share=round(sum(q.fact.kind in TITLE_KINDS for q in asked) / max(len(asked), 1), 3),
    )
    logger.info("data: %s", stats)
    return stats


def sample_questions(index: LocalIndex, count: int, rng: random.Random, result_words: int = 100) -> list[QA]:
    """Fresh questions about training facts (never a held-out article or subject), relations drawn
    as for the trajectories, each fact asked once."""
    held_out = held_out_titles()
    facts = [f for f in all_facts(index, result_words) if trainable(f, held_out)]
    families = _families(facts)
    names = sorted(families)
    weights = [min(len(families[n]), 60) ** 0.5 for n in names]
    asked: dict[tuple[str, str], QA] = {}
    attempts = 0
    while len(asked) < count and attempts < count * 20:
        attempts += 1
        fact = rng.choice(families[rng.choices(names, weights)[0]])
        key = (fact.article, fact.kind)
        if key not in asked:
            asked[key] = _qa(fact, attempts, rng)
    return list(asked.values())


def _families(facts: list[Fact]) -> dict[str, list[Fact]]:
    """Facts by relation, the by_<verb> and year_<verb> relations each one family."""
    out: dict[str, list[Fact]] = {}
    for fact in facts:
        out.setdefault(
            fact.kind.split("_")[0] if fact.kind.startswith(("by_", "year_")) else fact.kind, []
        ).append(fact)
    return out


def _eval_row(qa: QA) -> dict[str, object]:
    return {"id": qa.id, "question": qa.question, "golden_answers": list(qa.answers), "kind": qa.fact.kind}


def read_trajectories(path: Path) -> list[Trajectory]:
    with path.open(encoding="utf-8") as handle:
        return [Trajectory.from_json(json.loads(line)) for line in handle if line.strip()]


def added_trajectories(trajectories: list[Trajectory]) -> dict[str, object]:
    """What files added with ``--own`` hold, for the card: the model's own sampled trajectories (kind
    ``own``, from ``train.sample``) and trajectories built by an earlier run, with the ranks their real
    searches read the answer at."""
    built = [t for t in trajectories if t.kind != OWN_KIND]
    return {
        "own_trajectories": len(trajectories) - len(built),
        "built_added": len(built),
        "built_added_rank": answer_ranks(built),
    }


def answer_ranks(trajectories: list[Trajectory]) -> dict[int, int]:
    """How many real-search trajectories read their answer at each rank (their first search's), by rank."""
    return dict(sorted(Counter(r for t in trajectories for r in t.ranks[:1] if t.kind in REAL_KINDS).items()))


def answer_sentences(trajectories: list[Trajectory]) -> dict[int, int]:
    """How many trajectories quote their answer from each sentence (1-based) of the result they read."""
    return dict(sorted(Counter(t.sentence for t in trajectories if t.sentence).items()))
