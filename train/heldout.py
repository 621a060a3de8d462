"""Check that the hand-written natural question sets are held out from training.

    python -m train.heldout              # prints the check's figures
    python -m train.heldout bench/results/eval-natural-test/results.jsonl   # ... and EM without them

Two checks: no article (or subject) of a natural question is among the training facts, and which
natural questions a training phrasing would produce word for word if it were filled with that
question's subject (the simplest phrasings people type, such as "who wrote hamlet", are also
phrasings of the templates; those questions are listed so that figures can be given without them).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from train.data import HELD_OUT, all_facts, held_out_titles, split_of
from train.qa import Fact

_FILLER = re.compile(
    r"^(?:hey|quick q|do you know|can you tell me|i wonder|please tell me|question|hi|so|ok|ok so)\s+"
)


def normalise(question: str) -> str:
    """Lower case, punctuation out, a leading filler dropped, white space folded."""
    text = " ".join(re.sub(r"[^\w\s']", " ", question.lower()).split())
    return _FILLER.sub("", text)


def template_outputs(facts: Iterable[Fact]) -> dict[str, Fact]:
    """Every question a fact's phrasings produce with its subject or a short name, normalised."""
    made: dict[str, Fact] = {}
    for fact in facts:
        for phrasing in fact.questions:
            for subject in (fact.subject, *fact.short_names):
                made.setdefault(normalise(phrasing.replace("{s}", subject)), fact)
    return made


def collisions(rows: Iterable[dict[str, object]], made: dict[str, Fact]) -> list[tuple[str, str, str]]:
    """(question, the phrasing's relation, the fact's article) of each natural question a template makes."""
    out = []
    for row in rows:
        fact = made.get(normalise(str(row["question"])))
        if fact is not None:
            out.append((str(row["question"]), fact.kind, fact.article))
    return out


def em_without(results: Path, left_out: set[str], groups: dict[str, str]) -> dict[str, dict[str, float]]:
    """EM % per mode and popularity group of an ssrl-eval results.jsonl over the questions of
    ``groups`` (id -> group), the ``left_out`` ones (by text) not counted."""
    scores: dict[str, dict[str, list[float]]] = {}
    for line in results.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else None
        if not row or row.get("error") is not None or str(row["id"]) not in groups:
            continue  # another set's question
        if row["question"] in left_out:
            continue
        for group in ("all", groups.get(str(row["id"]), "all")):
            scores.setdefault(row["mode"], {}).setdefault(group, []).append(float(row["em"]))
    return {
        mode: {f"{group} (n={len(v)})": round(100 * sum(v) / len(v), 1) for group, v in sorted(by.items())}
        for mode, by in sorted(scores.items())
    }


def main(argv: list[str] | None = None) -> int:
    from service.search.local import LocalIndex
    from service.settings import Settings

    index = LocalIndex.load(None, Settings().cache_dir / "indexes")
    facts = all_facts(index, 100)
    held = held_out_titles()
    training = [f for f in facts if split_of(f.article) == "train"]
    leaked = [f for f in training if f.article.lower() in held or f.subject.lower() in held]
    made = template_outputs(facts)
    report: dict[str, object] = {"training_facts_left_out_as_held_out": len(leaked)}
    for path in HELD_OUT:
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
        found = collisions(rows, made)
        report[Path(path).name] = {"questions": len(rows), "a_template_would_produce": len(found)}
        for question, kind, article in found:
            print(f"{Path(path).name}: {question!r} = a {kind} phrasing (fact of {article!r})")
        made_here = {question for question, _, _ in found}
        groups = {str(r["id"]): str(r.get("popularity") or "all") for r in rows}
        for results in argv if argv is not None else sys.argv[1:]:
            figures = em_without(Path(results), made_here, groups)
            if figures:  # the results of this set's questions
                report[f"{results}, EM % without those"] = figures
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
