"""Question-answer pairs from the embedded Wikipedia summaries.

Each rule reads one fact from the part of an article the search results show (its first
``result_words`` words), so a real search for the article can answer it. Answers are short spans of
that text (names, places, years, numbers, nationalities; at most five words) that exact match can
score; titles are the answer only for the description questions, a minority. Every fact has several
phrasings of the question and several short search queries, none a copy of the question.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from service.search.base import Doc

_NAME = r"[A-Z][\w'’.-]*(?:\s(?:[A-Z][\w'’.-]*|de|da|van|von|of|the|del|di|le|la|al|bin|ibn))*"
_PLACE = r"(?:the\s)?[A-Z][\w'’-]*(?:\s(?:[A-Z][\w'’-]*|of|and))*"
_NUMBER = r"\d[\d,.]*(?:\s(?:million|billion|thousand))?"
_DEMONYMS = [
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
_DEMONYM = "|".join(sorted(_DEMONYMS, key=len, reverse=True))


@dataclass(frozen=True)
class Fact:
    """One fact of one article: what to ask, what to search, what answers it."""

    kind: str
    article: str  # title of the article holding the fact
    questions: tuple[str, ...]  # phrasings, with {s} for the subject
    queries: tuple[str, ...]  # short search queries
    answers: tuple[str, ...]  # gold answers, the first as written in the article
    need: str  # what the reasoning says it must find, e.g. "the nationality of Kant"
    subject: str


@dataclass(frozen=True)
class QA:
    id: str
    question: str
    answers: tuple[str, ...]
    fact: Fact = field(compare=False)


def subject_of(title: str) -> str:
    """The article title without a disambiguation such as " (statue)"."""
    return re.sub(r"\s*\([^)]*\)$", "", title).strip()


def _lower_first(text: str, context: str) -> str:
    """Lower-case the first word unless it is a proper word (a nationality, or capitalised mid-sentence)."""
    word = text.split()[0] if text.split() else ""
    if not word or word in _DEMONYMS or word.isupper() or re.search(rf"[a-z,] {re.escape(word)}\b", context):
        return text
    return text[:1].lower() + text[1:]


def _trim(span: str) -> str:
    """A captured name or place cut at a sentence end and freed of trailing joiners."""
    words: list[str] = []
    for word in span.split():
        if word.endswith(".") and len(word.rstrip(".")) > 2:  # "Sica. It": the sentence ended
            words.append(word.rstrip("."))
            break
        words.append(word)
    while words and words[-1] in (
        "of",
        "and",
        "the",
        "de",
        "da",
        "van",
        "von",
        "del",
        "di",
        "le",
        "la",
        "al",
    ):
        words.pop()
    return " ".join(words).strip().rstrip(".,;:").strip()


def _proper(span: str) -> bool:
    """A place or a name, not a nationality adjective ("the Indian" state of ...)."""
    bare = re.sub(r"^the ", "", span)
    return (
        bool(bare)
        and bare.split()[0] not in _DEMONYMS
        and bare.split()[0] not in ("The", "A", "An", "In", "He", "She", "It")
    )


Rule = Callable[[Doc, str], Iterator[Fact]]


def _facts(doc: Doc, text: str, topic: str) -> Iterator[Fact]:
    s = subject_of(doc.title)
    person = topic == "People"
    lead = text.split(". ")[0]

    if (m := re.search(r"symbol ([A-Z][a-z]?) and atomic number (\d+)", text)) is not None:
        yield Fact(
            "symbol",
            doc.title,
            (
                "What is the chemical symbol of {s}?",
                "Which symbol does {s} have in the periodic table?",
                "what's the element symbol for {s}",
                "The chemical element {s} has which symbol?",
            ),
            (f"{s} chemical symbol", f"{s} element", f"{s} symbol atomic number"),
            (m.group(1),),
            f"the chemical symbol of {s}",
            s,
        )
        yield Fact(
            "atomic_number",
            doc.title,
            (
                "What is the atomic number of {s}?",
                "How many protons does an atom of {s} have?",
                "{s} has what atomic number?",
                "atomic number of {s}?",
            ),
            (f"{s} atomic number", f"{s} chemical element", f"{s} element protons"),
            (m.group(2),),
            f"the atomic number of {s}",
            s,
        )
    if (m := re.search(rf"[Ii]ts capital(?: and largest city)? is ({_NAME})", text)) is not None:
        capital = _trim(m.group(1))
        yield Fact(
            "capital",
            doc.title,
            (
                "What is the capital of {s}?",
                "Which city is the capital of {s}?",
                "{s}'s capital city is called what?",
                "Name the capital of {s}.",
                "capital of {s}?",
            ),
            (f"{s} capital", f"capital of {s}", f"{s} capital city"),
            (capital,),
            f"the capital of {s}",
            s,
        )
    if m := re.search(rf"^[^.]*? is the capital(?: and (?:largest|most populous) city)? of ({_PLACE})", lead):
        place = _trim(m.group(1))
        yield Fact(
            "capital_of",
            doc.title,
            (
                "{s} is the capital of which state or country?",
                "What is {s} the capital of?",
                "Of which place is {s} the capital?",
                "{s} serves as the capital of what?",
            ),
            (f"{s} capital", f"{s} city", f"{s}"),
            (place, re.sub(r"^the ", "", place)),
            f"what {s} is the capital of",
            s,
        )
        yield Fact(
            "capital",
            doc.title,
            (
                f"What is the capital of {place}?",
                f"Which city is the capital of {place}?",
                f"Name the capital city of {place}.",
                f"what city is {place}'s capital",
            ),
            (f"capital of {place}", f"{place} capital city", f"{re.sub(r'^the ', '', place)} capital"),
            (s,),
            f"the capital of {place}",
            place,
        )
    loc = re.search(
        r"^[^.]*? is (?:a|an|the)\s(?:[\w-]+\s){0,3}?(city|town|village|port|municipality|island|river|lake|"
        r"mountain|volcano|desert|region|province|state|country|mountain range|peninsula)\s(?:located\s)?in\s"
        rf"({_PLACE})",
        lead,
    )
    place = _trim(loc.group(2)) if loc is not None else ""
    if loc is not None and _proper(place) and not re.match(r"(?:the\s)?(?:North|South|East|West)$", place):
        what = loc.group(1)
        yield Fact(
            "location",
            doc.title,
            (
                "Where is {s}?",
                "In which country or region is {s}?",
                f"Where is the {what} of {{s}} located?",
                f"{{s}} is a {what} in what place?",
                "Where would you find {s}?",
                "{s} is located where?",
            ),
            (f"{s} location", f"{s} {what}", f"where is {s}"),
            (place, re.sub(r"^the ", "", place)),
            f"where {s} is",
            s,
        )
    for verb, region in (
        ("native to", "Where is {s} native to?"),
        ("spoken (?:\\w+ )?in", "Where is {s} spoken?"),
    ):
        if (m := re.search(rf"\b{verb} ({_PLACE})", text)) is not None:
            place = _trim(m.group(1))
            if not _proper(place):
                continue
            extra = (
                ("Which region is {s} native to?", "{s} comes from what part of the world?")
                if "native" in verb
                else ("In which country is the {s} spoken?", "Which place is {s} mainly spoken in?")
            )
            yield Fact(
                "native" if "native" in verb else "spoken",
                doc.title,
                (region, *extra),
                (f"{s} native range", f"{s} habitat", f"{s}")
                if "native" in verb
                else (f"{s} speakers", f"{s} where spoken", f"{s} language"),
                (place, re.sub(r"^the ", "", place)),
                f"where {s} is {'native to' if 'native' in verb else 'spoken'}",
                s,
            )
    if m := re.search(
        rf"^[^.]*? (?:was|is) an? ({_DEMONYM})\s((?:[a-z-]+\s){{0,2}}?[a-z-]+)(?=[,.]|\sand\s|\swho\s)", lead
    ):
        nationality, job = m.group(1), m.group(2)
        if person and len(s.split()) >= 2:
            yield Fact(
                "nationality",
                doc.title,
                (
                    "What nationality was {s}?",
                    "{s} was of what nationality?",
                    "Which country was {s} from?",
                    "what was the nationality of {s}",
                    "Tell me the nationality of {s}.",
                ),
                (f"{s} nationality", f"{s} biography", f"{s}"),
                (nationality,),
                f"the nationality of {s}",
                s,
            )
            last = job.split()[-1]
            yield Fact(
                "occupation",
                doc.title,
                (
                    "What was {s}'s profession?",
                    "What did {s} do for a living?",
                    "{s} was known as what?",
                    "What was the occupation of {s}?",
                    "who was {s}",
                ),
                (f"{s} occupation", f"{s} career", f"{s} biography"),
                tuple(dict.fromkeys((job, last))),
                f"the occupation of {s}",
                s,
            )
    verbs = {
        "directed": ("Who directed {s}?", "Who was the director of {s}?", "{s} was directed by whom?"),
        "written": ("Who wrote {s}?", "Who is the author of {s}?", "{s} was written by whom?"),
        "composed": ("Who composed {s}?", "Who wrote the music of {s}?", "{s} was composed by whom?"),
        "painted": ("Who painted {s}?", "Which artist painted {s}?", "{s} is a painting by whom?"),
        "designed": (
            "Who designed {s}?",
            "Which architect or engineer designed {s}?",
            "{s} was designed by?",
        ),
        "founded": ("Who founded {s}?", "Who was the founder of {s}?", "{s} was founded by whom?"),
        "developed": ("Who developed {s}?", "{s} was developed by whom?", "Who created {s}?"),
        "discovered": (
            "Who discovered {s}?",
            "{s} was discovered by whom?",
            "Which scientist discovered {s}?",
        ),
        "invented": ("Who invented {s}?", "Who is credited with inventing {s}?", "{s} was invented by?"),
        "created": ("Who created {s}?", "Who is the creator of {s}?", "{s} was created by whom?"),
    }
    if not person and (m := re.search(rf"\b({'|'.join(verbs)}) by ({_NAME})", text)) is not None:
        maker = _trim(m.group(2))
        if _proper(maker) and len(maker.split()) <= 4:
            verb = m.group(1)
            yield Fact(
                f"by_{verb}",
                doc.title,
                verbs[verb],
                (
                    f"{s} {verb} by",
                    f"{s} {verb.rstrip('ed')}er" if verb != "written" else f"{s} author",
                    f"{s}",
                ),
                (maker, maker.split()[-1])
                if 1 < len(maker.split()) <= 3 and " of " not in maker
                else (maker,),
                f"who {verb} {s}",
                s,
            )
    years = {
        "published": (
            "When was {s} published?",
            "In what year was {s} first published?",
            "{s} came out in which year?",
        ),
        "founded": (
            "When was {s} founded?",
            "In which year was {s} founded?",
            "What year was {s} established?",
        ),
        "established": (
            "When was {s} established?",
            "In what year was {s} set up?",
            "{s} dates from which year?",
        ),
        "built": ("When was {s} built?", "In what year was {s} constructed?", "{s} was built in which year?"),
        "completed": (
            "When was {s} completed?",
            "In which year was {s} finished?",
            "What year was {s} completed?",
        ),
        "released": (
            "When was {s} released?",
            "What year did {s} come out?",
            "{s} was released in which year?",
        ),
        "discovered": (
            "When was {s} discovered?",
            "In what year was {s} discovered?",
            "{s} was found in which year?",
        ),
        "written": (
            "When was {s} written?",
            "In what year did the author write {s}?",
            "{s} dates from what year?",
        ),
        "opened": ("When did {s} open?", "In what year did {s} open?", "{s} opened in which year?"),
        "signed": ("When was {s} signed?", "In which year was {s} signed?", "What year was {s} signed?"),
    }
    if (
        not person
        and (m := re.search(rf"\b({'|'.join(years)})\b(?:\s[\w,]+){{0,5}}?\sin\s(\d{{3,4}})\b", text))
        is not None
    ):
        verb = m.group(1)
        yield Fact(
            f"year_{verb}",
            doc.title,
            years[verb],
            (f"{s} {verb} year", f"{s} history", f"when {s} {verb}"),
            (m.group(2),),
            f"the year {s} was {verb}",
            s,
        )
    if topic == "Geography" and (
        m := re.search(
            rf"population of (?:about |around |approximately |over |more than |nearly |some )?({_NUMBER})",
            text,
        )
    ):
        number = _trim(m.group(1))
        yield Fact(
            "population",
            doc.title,
            (
                "What is the population of {s}?",
                "How many people live in {s}?",
                "{s} has how many inhabitants?",
                "population of {s}?",
            ),
            (f"{s} population", f"{s} inhabitants", f"{s} census"),
            (number,),
            f"the population of {s}",
            s,
        )
    if (m := re.search(rf"\b({_NUMBER}) (?:native )?speakers\b", text)) is not None:
        yield Fact(
            "speakers",
            doc.title,
            ("How many people speak {s}?", "How many speakers does {s} have?", "{s} has how many speakers?"),
            (f"{s} speakers", f"{s} number of speakers", f"{s} language"),
            (_trim(m.group(1)),),
            f"the number of speakers of {s}",
            s,
        )
    m = re.search(r"\bnamed after (?:the\s)?([A-Z][\w'’-]*(?:\s[A-Z][\w'’-]*){0,3})", text)
    if m is not None and _proper(_trim(m.group(1))):
        yield Fact(
            "named_after",
            doc.title,
            (
                "Who or what is {s} named after?",
                "Where does the name {s} come from?",
                "{s} was named after whom?",
            ),
            (f"{s} name origin", f"{s} named after", f"{s} etymology"),
            (_trim(m.group(1)),),
            f"what {s} is named after",
            s,
        )


def _description_fact(doc: Doc, description: str) -> Fact | None:
    """A description question: the answer is the title (kept a minority of the set)."""
    description = description.strip().rstrip(".")
    if (
        not description
        or len(description.split()) < 3
        or subject_of(doc.title).lower() in description.lower()
    ):
        return None
    lived = re.search(r"\((?:c\.\s)?(\d{3,4})\s?[–-]\s?(\d{3,4})\)", description)
    desc = re.sub(r"\s*\([^)]*\)", "", description).strip()
    d = _lower_first(desc, doc.text)
    if lived:
        questions = (
            f"Which {d} lived from {lived.group(1)} to {lived.group(2)}?",
            f"Who was the {d} born in {lived.group(1)}?",
            f"Name the {d} who died in {lived.group(2)}.",
        )
        queries = (
            f"{d} {lived.group(1)}",
            f"{d} {lived.group(1)} {lived.group(2)}",
            f"{d} born {lived.group(1)}",
        )
    else:
        questions = (
            f"What is the name of the {d}?",
            f"Which {d} is this: what is it called?",
            f"What do we call the {d}?",
            f"name the {d}",
        )
        queries = (d, f"{d} name", " ".join(d.split()[:4]))
    return Fact("description", doc.title, questions, queries, (subject_of(doc.title),), f"the {d}", d)


def facts_of(doc: Doc, description: str, topic: str, result_words: int) -> list[Fact]:
    """Every fact of an article whose answer lies in the part of the text a search result shows."""
    text = " ".join(doc.text.split()[:result_words])
    found = [f for f in _facts(doc, text, topic) if all(len(a.split()) <= 5 for a in f.answers[:1])]
    found = [f for f in found if f.answers[0] and f.answers[0].lower() in text.lower()]
    desc = _description_fact(doc, description)
    if desc is not None:
        found.append(desc)
    return found


_PREFIXES = ("", "", "", "", "", "", "Do you know: ", "Quick question: ", "Can you tell me: ", "I wonder, ")


def phrase(fact: Fact, rng: random.Random) -> str:
    """One phrasing of a fact's question, with some of the noise of real questions."""
    question = rng.choice(fact.questions).replace("{s}", fact.subject)
    prefix = rng.choice(_PREFIXES)
    if prefix:
        question = (
            prefix + question[0].lower() + question[1:] if not question[1:2].isupper() else prefix + question
        )
    if rng.random() < 0.15:
        question = question.rstrip("?.")
    if rng.random() < 0.1:
        question = question.lower()
    return question[0].upper() + question[1:] if not prefix and rng.random() < 0.9 else question
