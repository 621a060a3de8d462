"""Question-answer pairs from the embedded Wikipedia summaries, by a table of rules.

Each rule reads one fact from the part of an article a search result shows: a pattern over the
text (or its lead sentence, or the article's short description), which group is the answer and
which the subject, and the relation it asks for. Answers are short spans of the text (names,
places, years, numbers, nationalities; at most five words); the article's own title is the answer
only where the question asks for the thing itself. How people ask each relation lives in
``train.phrasings`` (15 or more phrasings each); ``phrase`` adds the noise of typed questions.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from service.search.base import Doc
from train.phrasings import RELATIONS, Relation

_NAME = r"[A-Z][\w'’.-]*(?:\s(?:[A-Z][\w'’.-]*|de|da|van|von|of|the|del|di|le|la|al|bin|ibn))*"
_PLACE = r"(?:the\s)?[A-Z][\w'’-]*(?:\s(?:[A-Z][\w'’-]*|of|and))*"
_NUMBER = r"\d[\d,.]*(?:\s(?:million|billion|thousand))?"
DEMONYMS = frozenset(
    [
        "American",
        "English",
        "British",
        "French",
        "German",
        "Italian",
        "Spanish",
        "Russian",
        "Chinese",
        "Japanese",
        "Indian",
        "Greek",
        "Dutch",
        "Scottish",
        "Irish",
        "Austrian",
        "Swiss",
        "Swedish",
        "Polish",
        "Canadian",
        "Australian",
        "Brazilian",
        "Mexican",
        "Argentine",
        "Egyptian",
        "Persian",
        "Roman",
        "Danish",
        "Norwegian",
        "Belgian",
        "Hungarian",
        "Czech",
        "Portuguese",
        "Korean",
        "Turkish",
        "Israeli",
        "Nigerian",
        "Welsh",
        "Soviet",
        "Prussian",
        "Flemish",
        "Venetian",
        "Florentine",
        "Finnish",
        "Ukrainian",
        "Cuban",
        "Chilean",
        "Colombian",
        "Peruvian",
        "Iranian",
        "Pakistani",
        "Indonesian",
        "Vietnamese",
        "Thai",
        "Filipino",
        "Ethiopian",
        "Kenyan",
        "Jamaican",
        "Romanian",
        "Serbian",
        "Croatian",
        "Bulgarian",
        "Lebanese",
        "Syrian",
        "Iraqi",
        "Saudi",
        "Mongolian",
        "Tibetan",
        "Nepalese",
        "Afghan",
        "Arab",
        "Byzantine",
        "Athenian",
        "Macedonian",
        "Carthaginian",
        "Babylonian",
        "Assyrian",
        "Ghanaian",
        "Senegalese",
        "Icelandic",
        "Estonian",
        "Latvian",
        "Lithuanian",
        "Slovak",
        "Slovenian",
        "Bosnian",
        "Albanian",
        "Georgian",
        "Armenian",
        "Uzbek",
        "Kazakh",
        "Bengali",
        "Sri",
        "Lankan",
        "Malaysian",
        "Singaporean",
        "Moroccan",
        "Algerian",
        "Tunisian",
        "Venezuelan",
        "Uruguayan",
        "Bolivian",
    ]
)
_DEMONYM = "|".join(sorted(DEMONYMS, key=len, reverse=True))
_GLUE = ("of", "and", "the", "de", "da", "van", "von", "del", "di", "le", "la", "al")
_PLACE_WORDS = (
    "city|town|village|port|municipality|island|river|lake|mountain|volcano|desert|region|province|state|"
    "country|mountain range|peninsula"
)
_MAKERS = {
    "directed": "directed",
    "written": "written",
    "composed": "composed",
    "painted": "painted",
    "designed": "designed",
    "founded": "founded",
    "developed": "developed",
    "discovered": "discovered",
    "invented": "invented",
    "created": "created",
}
#: Roles in a person's short description ("Inventor of the telephone") -> the by_<verb> relation.
_ROLES = {
    "Inventor": "invented",
    "Discoverer": "discovered",
    "Founder": "founded",
    "Co-founder": "founded",
    "Author": "written",
    "Writer": "written",
    "Composer": "composed",
    "Creator": "created",
    "Designer": "designed",
    "Architect": "designed",
    "Director": "directed",
    "Painter": "painted",
}


#: Kinds of works in a lead sentence ("... is a novel by Jane Austen") -> the by_<verb> relation.
_WORKS = {
    **dict.fromkeys(
        (
            "novel",
            "play",
            "poem",
            "book",
            "novella",
            "short story",
            "tragedy",
            "comedy",
            "epic poem",
            "essay",
            "treatise",
            "trilogy",
        ),
        "written",
    ),
    **dict.fromkeys(("painting", "fresco", "mural"), "painted"),
    **dict.fromkeys(
        ("opera", "symphony", "song", "album", "ballet", "musical", "sonata", "concerto", "oratorio"),
        "composed",
    ),
    "film": "directed",
    **dict.fromkeys(("sculpture", "statue", "series"), "created"),
}
_VERB_OF = {**_ROLES, **_WORKS}


@dataclass(frozen=True)
class Fact:
    """One fact of one article: what to ask, what to search, what answers it."""

    kind: str
    article: str  # title of the article holding the fact
    questions: tuple[str, ...]  # phrasings, with {s} for the subject
    queries: tuple[str, ...]  # short search queries naming the subject
    answers: tuple[str, ...]  # gold answers, the first as written in the article
    need: str  # what the reasoning says it must find, e.g. "the nationality of Immanuel Kant"
    subject: str
    #: Other ways people name the subject ("Kant" for Immanuel Kant, "Mona Lisa" for The Mona Lisa).
    short_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class QA:
    id: str
    question: str
    answers: tuple[str, ...]
    fact: Fact = field(compare=False)
    #: The subject as this question names it (the full name or a short one).
    subject: str = ""
    #: The question before a typo was put in (what a query copying the question uses).
    clean_question: str = ""


def subject_of(title: str) -> str:
    """The article title without a disambiguation such as " (statue)"."""
    return re.sub(r"\s*\([^)]*\)$", "", title).strip()


def _trim(span: str) -> str:
    """A captured name or place cut at a sentence end and freed of trailing joiners."""
    words: list[str] = []
    for word in span.split():
        if word.endswith(".") and len(word.rstrip(".")) > 2:  # "Sica. It": the sentence ended
            words.append(word.rstrip("."))
            break
        words.append(word)
    while words and words[-1] in _GLUE:
        words.pop()
    return " ".join(words).strip().rstrip(".,;:").strip()


def _proper(span: str) -> bool:
    """A place or a name, not a nationality adjective ("the Indian" state of ...)."""
    bare = re.sub(r"^the ", "", span)
    return (
        bool(bare)
        and bare.split()[0] not in DEMONYMS
        and bare.split()[0] not in ("The", "A", "An", "In", "He", "She", "It")
    )


def _without_the(span: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys((span, re.sub(r"^the ", "", span))))


def short_names(subject: str, person: bool) -> tuple[str, ...]:
    """How people shorten a name: a person's last name, a work's title without "The"."""
    words = subject.split()
    out: list[str] = []
    if person and len(words) >= 2 and len(words[-1]) > 2 and words[-1][0].isupper():
        out.append(words[-1])
    if words and words[0] == "The" and len(words) >= 2:
        out.append(" ".join(words[1:]))
    return tuple(out)


Scope = Literal["text", "lead", "description"]


@dataclass(frozen=True)
class Rule:
    """One row of the table: where to look, what the question is about and what answers it.

    ``answer`` / ``about`` name a group of ``pattern`` (or ``"title"``: the article's subject); the
    relation is ``kind`` with ``{1}`` filled from group 1 where it names the verb.
    """

    kind: str
    pattern: str
    scope: Scope = "text"
    answer: int | str = 1
    about: int | str = "title"
    people: bool | None = None  # only people (True), never people (False), either (None)
    topic: str | None = None
    proper: bool = False  # the answer must be a proper name or place, not a nationality
    #: Answers "the X" also accept "X".
    drop_the: bool = False
    #: Most words of the captured subject (for inverse rules, whose subject is a phrase).
    about_words: int = 8
    #: The compiled pattern, when it does not depend on the article's title.
    compiled: re.Pattern[str] | None = field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        if "{title}" not in self.pattern:
            object.__setattr__(self, "compiled", re.compile(self.pattern))

    def search(self, text: str, title: str) -> re.Match[str] | None:
        """The rule's match in ``text`` (a pattern naming the title is compiled for this article: one
        per article would crowd the other patterns out of re's small cache)."""
        if self.compiled is not None:
            return self.compiled.search(text)
        return re.search(self.pattern.replace("{title}", re.escape(title)), text)


RULES: tuple[Rule, ...] = (
    Rule("symbol", r"symbol\s([A-Z][a-z]?) and atomic number\s(\d+)"),
    Rule("atomic_number", r"symbol\s([A-Z][a-z]?) and atomic number\s(\d+)", answer=2),
    Rule("capital", rf"(?:[Ii]ts|{{title}}'s) capital(?: and largest city)? is ({_NAME})"),
    Rule(
        "capital_of",
        rf"^[^.]*? is the capital(?: and (?:largest|most populous) city)? of ({_PLACE})",
        scope="lead",
        drop_the=True,
    ),
    Rule(
        "capital",
        rf"^[^.]*? is the capital(?: and (?:largest|most populous) city)? of ({_PLACE})",
        scope="lead",
        answer="title",
        about=1,
    ),
    Rule(
        "location",
        rf"^[^.]*? is (?:a|an|the)\s(?:[\w-]+\s){{0,3}}?(?:{_PLACE_WORDS})\s(?:located\s)?in\s({_PLACE})",
        scope="lead",
        proper=True,
        drop_the=True,
    ),
    Rule("native", rf"\bnative to ({_PLACE})", proper=True, drop_the=True),
    Rule("spoken", rf"\bspoken (?:\w+ )?in ({_PLACE})", proper=True, drop_the=True),
    Rule(
        "nationality",
        rf"^[^.]*? (?:was|is) an? ({_DEMONYM})\s(?:[a-z-]+\s){{0,2}}?[a-z-]+(?=[,.]|\sand\s|\swho\s)",
        scope="lead",
        people=True,
    ),
    Rule(
        "occupation",
        rf"^[^.]*? (?:was|is) an? (?:{_DEMONYM})\s((?:[a-z-]+\s){{0,2}}?[a-z-]+)(?=[,.]|\sand\s|\swho\s)",
        scope="lead",
        people=True,
    ),
    Rule("birthplace", rf"\b[Bb]orn in ({_PLACE})", people=True, proper=True, drop_the=True),
    Rule("by_{1}", rf"\b({'|'.join(_MAKERS)}) by ({_NAME})", answer=2, people=False, proper=True),
    Rule(
        "by_{1}",
        rf"^({'|'.join(_ROLES)}) of ((?:the )?[\w' -]+?)(?:\s\(|$)",
        scope="description",
        answer="title",
        about=2,
        about_words=6,
    ),
    Rule(
        "by_{1}",
        rf"^[^.]*? is an? (?:[\w'-]+ ){{0,4}}?({'|'.join(sorted(_WORKS, key=len, reverse=True))})"
        rf"(?: (?:written|composed|painted|directed|created|sculpted))? by (?:the )?({_NAME})",
        scope="lead",
        answer=2,
        people=False,
        proper=True,
    ),
    Rule(
        "alias",
        r"^{title}\b[^.]{0,40}?\b(?:also|commonly|often|sometimes|colloquially|popularly|more commonly) "
        r"(?:known as|called|referred to as) (?:the )?[\"“]?([A-Za-z][\w'’ -]{2,40}?)[\"”]?"
        r"(?=[,.;()]| or | and )",
        scope="lead",
    ),
    Rule(
        "former_name",
        r"\b(?:formerly|previously|originally|once) (?:known as |called |named )?(?:the )?[\"“]?"
        r"([A-Z][\w'’ -]{2,40}?)[\"”]?(?=[,.;()]| or | and | until )",
    ),
    Rule(
        "year_{1}",
        r"\b(published|founded|established|built|completed|released|discovered|written|opened|signed)\b"
        r"(?:\s[\w,]+){0,5}?\sin\s(\d{3,4})\b",
        answer=2,
        people=False,
    ),
    Rule(
        "population",
        rf"population of (?:about |around |approximately |over |more than |nearly |some )?({_NUMBER})",
        topic="Geography",
    ),
    Rule("speakers", rf"\b({_NUMBER}) (?:native )?speakers\b"),
    Rule("named_after", r"\bnamed after (?:the\s)?([A-Z][\w'’-]*(?:\s[A-Z][\w'’-]*){0,3})", proper=True),
    Rule(
        "known_as",
        r"(?:known|nicknamed|referred to) as (?:the )?[\"“]([^\"”]{3,40})[\"”]",
        answer="title",
        about=1,
        about_words=5,
    ),
    Rule(
        "superlative",
        r"^[^.]*? (?:is|was) the ((?:largest|highest|longest|oldest|tallest|deepest|biggest|smallest|"
        r"most populous|fastest|second-largest|second-highest) [^.,;()]{3,50}?)"
        r"(?=[.,;(]| and | which | that )",
        scope="lead",
        answer="title",
        about=1,
        people=False,
    ),
    Rule(
        "first_to",
        r"\bthe (first (?:person|man|woman|human|[a-z]+) to [^.,;()]{3,45}?)(?=[.,;(]| and | in \d)",
        answer="title",
        about=1,
        people=True,
    ),
)


def _answers(span: str, rule: Rule, kind: str, person_answer: bool) -> tuple[str, ...]:
    answers: tuple[str, ...] = _without_the(span) if rule.drop_the else (span,)
    words = span.split()
    if kind.startswith("by_") and 1 < len(words) <= 3 and " of " not in span:
        answers += (words[-1],)  # "Shakespeare" for "William Shakespeare"
    if kind == "occupation":
        answers += (words[-1],)
    if person_answer and 1 < len(words) <= 3:
        answers += (words[-1],)
    return tuple(dict.fromkeys(a for a in answers if a))


def _group(match: re.Match[str], which: int | str, title: str) -> str:
    return title if which == "title" else _trim(match.group(int(which)))


def facts_of(doc: Doc, description: str, topic: str, result_words: int) -> list[Fact]:
    """Every fact of an article whose answer lies in the part of the text a search result shows."""
    text = " ".join(doc.text.split()[:result_words])
    lead = text.split(". ")[0].rstrip(".") + "."
    title = subject_of(doc.title)
    person = topic == "People"
    found: dict[tuple[str, str], Fact] = {}
    for rule in RULES:
        if (rule.people is True and not person) or (rule.people is False and person):
            continue
        if rule.topic is not None and rule.topic != topic:
            continue
        where = {"text": text, "lead": lead, "description": description.strip()}[rule.scope]
        match = rule.search(where, title)
        if match is None:
            continue
        kind = rule.kind.replace("{1}", _VERB_OF.get(match.group(1), match.group(1)))
        answer = _group(match, rule.answer, title)
        about = _group(match, rule.about, title)
        if not answer or not about or (rule.proper and not _proper(answer)):
            continue
        if len(answer.split()) > 5 or len(about.split()) > rule.about_words:
            continue
        if rule.answer != "title" and answer.lower() not in text.lower():
            continue
        if kind in ("nationality", "occupation") and len(title.split()) < 2:
            continue
        relation = RELATIONS[kind]
        answers = _answers(answer, rule, kind, person and rule.answer == "title")
        about_person = person and rule.about == "title"
        fact = _fact(kind, doc.title, relation, about, answers, short_names(about, about_person))
        found.setdefault((kind, about.lower()), fact)
    facts = list(found.values())
    described = _description_fact(doc, description, person)
    if described is not None:
        facts.append(described)
    return facts


def _fact(
    kind: str,
    article: str,
    relation: Relation,
    about: str,
    answers: tuple[str, ...],
    shorts: tuple[str, ...] = (),
    fill: dict[str, str] | None = None,
) -> Fact:
    fill = fill or {}
    questions = tuple(_fill(q, fill) for q in relation.questions)
    queries = tuple(dict.fromkeys([about, *(f"{about} {k}" for k in relation.keywords)]))
    need = _fill(relation.need, fill).replace("{s}", about)
    return Fact(kind, article, questions, queries, answers, need, about, shorts)


def _fill(template: str, fill: dict[str, str]) -> str:
    for key, value in fill.items():
        template = template.replace("{" + key + "}", value)
    return template


def _lower_first(text: str) -> str:
    word = text.split()[0] if text.split() else ""
    if not word or word in DEMONYMS or word.isupper() or (len(word) > 1 and word[1:].lower() != word[1:]):
        return text
    return text[:1].lower() + text[1:]


def _specific(description: str) -> bool:
    """Whether a description names one thing ("capital and largest city of Kenya"), not a class
    of things ("type of material", "clade of insects")."""
    words = description.split()
    named = any(w[:1].isupper() or w[:1].isdigit() for w in words[1:])
    return len(words) >= 4 and (named or len(words) >= 6)


def _description_fact(doc: Doc, description: str, person: bool) -> Fact | None:
    """The article's short description as a question whose answer is the title (a minority)."""
    description = description.strip().rstrip(".")
    title = subject_of(doc.title)
    if not description or len(description.split()) < 3 or title.lower() in description.lower():
        return None
    lived = re.search(r"\((?:c\.\s)?(\d{3,4})\s?[–-]\s?(\d{3,4})\)", description)
    d = _lower_first(re.sub(r"\s*\([^)]*\)", "", description).strip())
    if not d or len(d.split()) > 10 or (not lived and not _specific(d)):
        return None
    answers = _answers(title, Rule("description", ""), "description", person)
    if lived:
        fill = {"y1": lived.group(1), "y2": lived.group(2)}
        fact = _fact("lived", doc.title, RELATIONS["lived"], d, answers, fill=fill)
        return Fact(
            fact.kind,
            fact.article,
            fact.questions,
            (f"{d} {lived.group(1)}", f"{d} {lived.group(1)} {lived.group(2)}", d),
            fact.answers,
            fact.need,
            fact.subject,
        )
    return _fact("description", doc.title, RELATIONS["description"], d, answers)


# -- the noise of typed questions ------------------------------------------------------------------
_FILLERS = (
    "hey, ",
    "quick q: ",
    "do you know ",
    "can you tell me ",
    "i wonder ",
    "please tell me ",
    "question: ",
    "hi, ",
    "so ",
    "ok, ",
)


def typo(word: str, rng: random.Random) -> str:
    """One slip of the keyboard: two letters swapped, one dropped or one doubled."""
    if len(word) < 5 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def phrase(fact: Fact, rng: random.Random) -> tuple[str, str, str]:
    """One way a person might type a fact's question: (question, the subject as it names it, the
    question before its typo, if any).

    About a third of questions are all lower case, a third lack a question mark, a few carry a
    typo or a filler, and a subject with a short name (a last name, a title without "The") is
    named by it a fifth of the time.
    """
    template = rng.choice(fact.questions)
    subject = fact.subject
    if fact.short_names and rng.random() < 0.2:
        subject = rng.choice(fact.short_names)
    question = template.replace("{s}", subject)
    if rng.random() < 0.12:
        question = rng.choice(_FILLERS) + question
    style = rng.random()
    if style < 0.35:
        question = question.lower()
    elif style < 0.75:
        question = question[:1].upper() + question[1:]
    # else: as the template has it (lower-case start, names capitalised)
    question = question.rstrip("?")
    if rng.random() < 0.6 and not question.endswith(":"):
        question += "?"
    clean = question
    if rng.random() < 0.07:
        words = question.split()
        at = rng.randrange(len(words))
        words[at] = typo(words[at], rng)
        question = " ".join(words)
    return question, subject, clean


_ASKING = frozenset(
    [
        "who",
        "what",
        "where",
        "when",
        "which",
        "why",
        "how",
        "many",
        "much",
        "whom",
        "whose",
        "is",
        "was",
        "are",
        "were",
        "did",
        "does",
        "do",
        "the",
        "a",
        "an",
        "me",
        "tell",
        "name",
        "one",
        "please",
        "know",
        "you",
        "can",
        "could",
        "i",
        "wonder",
        "what's",
        "whats",
        "who's",
        "whos",
        "where's",
        "wheres",
        "how's",
    ]
)


def question_keywords(question: str) -> str:
    """A question as a keyword query: its filler, question words and helper verbs dropped (a
    capitalised word inside the question is a name and stays: "Doctor Who")."""
    text = question.strip().rstrip("?.! ")
    for filler in _FILLERS:
        if text.lower().startswith(filler):
            text = text[len(filler) :]
    words = [w.strip(",:;?") for w in text.split()]
    kept = [w for i, w in enumerate(words) if w and not (w.lower() in _ASKING and (i == 0 or w.islower()))]
    while kept and kept[0].lower() in _GLUE:
        kept.pop(0)
    return " ".join(kept) or text


def all_question_patterns() -> list[tuple[str, str]]:
    """(kind, phrasing) of every relation: what the held-out check compares natural questions with."""
    return [(kind, q) for kind, relation in RELATIONS.items() for q in relation.questions]


def facts_by_rules(docs: list[tuple[Doc, str, str]], result_words: int) -> Iterator[Fact]:
    for doc, description, topic in docs:
        yield from facts_of(doc, description, topic, result_words)
