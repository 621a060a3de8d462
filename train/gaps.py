"""Open-relation questions: the name or year that completes a sentence about the article's subject.

The table of rules in ``train.qa`` knows 36 relations; people ask about many more ("which river
flows through Palembang", "biathlon combines cross-country skiing and what", "Cleopatra belonged to
what dynasty"). A model taught only the table answers an unknown relation with the question's own
subject (a third of the reading failures on the natural dev set: "Fraxinus", "Palembang", "Lake
Onega"). This module asks for what follows the subject in the article's own sentences, in the
declarative way people type such questions:

    "The Salween River flows from the Tibetan Plateau into the Andaman Sea."
    -> "salween river flows from the tibetan plateau into which sea?"   answer: Andaman Sea / Andaman

The answer is a proper name or a year after the subject in the same sentence (never a word of the
subject), the relation the words between them (2 to 9 words, one clause). A name ending in a type
word (Sea, River, dynasty, Empire, ...) is asked for with "which <type>", and its bare name is an
answer too.
"""

from __future__ import annotations

import re

from service.search.base import Doc
from service.search.snippets import sentences
from train.qa import _GLUE, DEMONYMS, Fact, short_names, subject_of

KIND = "gap"

_CONNECT = frozenset((*_GLUE, "du", "y"))
#: Lower-case words that may follow an answer (the noun phrase has ended).
_AFTER = frozenset(
    [
        "and",
        "or",
        "in",
        "on",
        "at",
        "of",
        "to",
        "from",
        "for",
        "with",
        "by",
        "as",
        "which",
        "that",
        "who",
        "whose",
        "where",
        "when",
        "is",
        "was",
        "are",
        "were",
        "until",
        "after",
        "before",
        "during",
        "since",
        "between",
        "near",
        "under",
    ]
)
#: Words a keyword query leaves out of a relation ("is located on the banks of" -> "located banks").
_STOP = frozenset(
    [
        "is",
        "was",
        "are",
        "were",
        "be",
        "been",
        "has",
        "had",
        "have",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "to",
        "by",
        "for",
        "from",
        "with",
        "as",
        "and",
        "or",
        "its",
        "his",
        "her",
        "their",
        "which",
        "that",
        "who",
        "also",
        "one",
    ]
)
_PRONOUNS = frozenset(["It", "He", "She", "They"])
_TYPES = frozenset(
    w.lower()
    for w in [
        "Sea",
        "Ocean",
        "River",
        "Lake",
        "Mountains",
        "Range",
        "Desert",
        "Island",
        "Islands",
        "Peninsula",
        "Valley",
        "Bay",
        "Gulf",
        "Strait",
        "Empire",
        "Kingdom",
        "Dynasty",
        "Republic",
        "Province",
        "State",
        "County",
        "City",
        "Party",
        "Church",
        "University",
        "College",
        "War",
        "Battle",
        "Prize",
        "Award",
        "Festival",
        "Basin",
        "Plateau",
        "Canal",
        "Museum",
        "Cathedral",
        "Temple",
        "Dynasty",
        "Caliphate",
        "Sultanate",
        "Confederation",
        "Union",
        "League",
        "Company",
        "Corporation",
        "Army",
        "Navy",
        "Order",
        "Treaty",
        "Revolution",
    ]
)
#: Types whose name is used without them ("the Musi", "Lake Baikal" as "Baikal" is another matter).
_BARE_NAMES = frozenset(["sea", "ocean", "river", "gulf", "bay", "peninsula", "desert", "strait"])
_YEAR = re.compile(r"^(?:1[0-9]{3}|20[0-2][0-9]|[1-9][0-9]{2})$")
_NOT_FIRST = frozenset(["or", "and", "the", "of", "a", "an", "also", "in", "on", "at"])
_BAD_FIRST = frozenset(["The", "A", "An", "In", "On", "At", "It", "He", "She", "They", "This", "These"])


def _strip(text: str) -> str:
    """A sentence without parentheses and bracketed notes."""
    text = re.sub(r"\s*\([^()]*\)", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _spans(words: list[str]) -> list[tuple[int, int]]:
    """(start, end) of proper names (capitalised words, joined by "of", "the", ...) and years."""
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        word = words[i].strip(",;:.")
        if _YEAR.match(word) and word == words[i].rstrip(",;:."):
            out.append((i, i + 1))
            i += 1
            continue
        titled = word == "The" and i + 1 < len(words) and words[i + 1][:1].isupper()  # "The Art of War"
        if word[:1].isupper() and (titled or word not in _BAD_FIRST):
            j = i + 1
            while j < len(words) and not re.search(r"[,;:]$", words[j - 1]):
                nxt = words[j].strip(",;:.")
                if nxt[:1].isupper():
                    j += 1
                elif nxt in _CONNECT and j + 1 < len(words) and words[j + 1][:1].isupper():
                    j += 2
                else:
                    break
            out.append((i, j))
            i = j
            continue
        i += 1
    return out


def _ends_phrase(words: list[str], end: int) -> bool:
    """Whether the noun phrase of a name ends with it (not "an American daily newspaper")."""
    if end >= len(words) or re.search(r"[,;:.]$", words[end - 1]):
        return True
    return words[end].strip(",;:.").lower() in _AFTER


def _subject_rest(sentence: str, subject: str, first: bool) -> str | None:
    """The sentence after its mention of the subject (the subject or a pronoun starting it)."""
    for lead in (subject, f"The {subject}", f"the {subject}"):
        if sentence.startswith(lead + " "):
            return sentence[len(lead) :].strip()
    word = sentence.split(" ", 1)
    if not first and word[0] in _PRONOUNS and len(word) > 1:
        return word[1]
    return None


def _questions(relation: str, answer: str, year: bool) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    """(phrasings with {s}, the words the reasoning says it needs, answers)."""
    rel = relation
    bare = re.sub(r"\s+(?:the|a|an)$", "", rel)
    answers: tuple[str, ...] = (answer,)
    if answer.lower().startswith("the "):
        answers += (answer[4:],)
    if year:
        without_in = re.sub(r"\s+in$", "", bare)
        return (
            (
                f"{{s}} {without_in} in which year?",
                f"{{s}} {without_in} when?",
                f"when {{s}} {without_in}",
                f"{{s}} {without_in} in what year",
            ),
            f"the year {{s}} {without_in}",
            answers,
        )
    last = answer.split()[-1]
    noun = last.lower() if last.lower() in _TYPES else ""
    head = " ".join(answer.split()[:-1])
    if noun and head and head.split()[-1] not in _CONNECT and head not in ("The", "the"):
        if noun in _BARE_NAMES:  # "Andaman Sea" is also "the Andaman"
            answers += (head,)
        return (
            (f"{{s}} {bare} which {noun}?", f"{{s}} {bare} what {noun}", f"which {noun} {{s}} {bare}?"),
            f"the {noun} {{s}} {bare}",
            answers,
        )
    where = bare.split()[-1] in ("in", "at", "near", "from", "on")
    forms = [f"{{s}} {bare} what?", f"{{s}} {bare} what"]
    if where:
        forms.append(f"{{s}} {bare} where?")
    return tuple(forms), f"what {{s}} {bare}", answers


def gap_facts(doc: Doc, topic: str, result_words: int, per_article: int = 2) -> list[Fact]:
    """Open-relation facts of an article, from the sentences a search result shows."""
    text = " ".join(doc.text.split()[:result_words])
    subject = subject_of(doc.title)
    subject_words = {w.lower().strip(",.") for w in subject.split()}
    person = topic == "People"
    facts: list[Fact] = []
    seen: set[str] = set()
    for n, sentence in enumerate(sentences(text)[:4]):
        rest = _subject_rest(_strip(sentence), subject, first=n == 0)
        if rest is None:
            continue
        words = rest.split()
        for start, end in _spans(words):
            answer = " ".join(words[start:end]).strip(",;:.")
            if start < 2 or start > 9 or not answer or end - start > 5:
                continue
            relation_words = words[:start]
            if any(re.search(r"[,;:]$", w) for w in relation_words):
                break  # a clause boundary: the relation would not be one phrase
            relation = " ".join(relation_words)
            answer_words = {w.lower() for w in answer.split()}
            year = bool(_YEAR.match(answer))
            if answer_words & subject_words or answer.lower() in seen or answer.split()[0] in DEMONYMS:
                continue
            if not year and not _ends_phrase(words, end):
                continue
            if relation_words[0].lower() in _NOT_FIRST or relation_words[0][:1].isupper():
                break  # "Leviathan or The Matter ...": not a relation of the subject
            if re.search(r"[\"“”\d]", relation + ("" if year else answer)):
                continue  # quotations and measures ("at a distance of 5.20 AU") make no question
            if year and relation_words[-1] not in ("in", "since"):
                continue
            phrasings, need, answers = _questions(relation, answer, year)
            content = [w for w in relation_words if w.lower() not in _STOP][:4]
            queries = (subject, f"{subject} {' '.join(content)}") if content else (subject,)
            need = need.replace("{s}", subject)
            facts.append(
                Fact(
                    KIND,
                    doc.title,
                    phrasings,
                    queries,
                    answers,
                    need,
                    subject,
                    () if "," in subject else short_names(subject, person),
                )
            )
            seen.add(answer.lower())
            break  # one answer per sentence: the nearest name after the subject
        if len(facts) >= per_article:
            break
    return facts
