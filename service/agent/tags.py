"""The four protocol tags: finding actions and answers, and keeping search results from forging them."""

from __future__ import annotations

import re
from dataclasses import dataclass

SEARCH_OPEN, SEARCH_CLOSE = "<search>", "</search>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

#: Appended on an invalid action, verbatim from the paper's code.
CORRECTION = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
    "</search>. If I want to give the final answer, I should put the answer between <answer> and "
    "</answer>. Let me try again.\n"
)

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Any spelling of a protocol tag a document could carry: case, spaces, a slash, HTML escapes.
_PROTOCOL_TAG = re.compile(
    r"(?:<|&lt;|&#0*60;|&#x0*3c;)\s*/?\s*(?:information|answer|search|think)\s*(?:>|&gt;|&#0*62;|&#x0*3e;)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SearchAction:
    query: str
    #: Character span of the query inside the text it was found in.
    start: int
    end: int


def last_answer(text: str) -> str | None:
    """The content of the LAST <answer>...</answer>, stripped; None when there is none."""
    answers = _ANSWER.findall(text)
    return answers[-1].strip() if answers else None


def search_action(segment: str) -> SearchAction | None:
    """The query of a segment that ends with </search>; None if it is malformed.

    The query is the text after the last <search> before the closing tag. A query must be a single
    non-empty line (the protocol's rule): an empty one or one spanning lines is malformed.
    """
    if not segment.rstrip().endswith(SEARCH_CLOSE):
        return None
    close = segment.rstrip().rfind(SEARCH_CLOSE)
    open_ = segment.rfind(SEARCH_OPEN, 0, close)
    if open_ < 0:
        return None
    start, end = open_ + len(SEARCH_OPEN), close
    raw = segment[start:end]
    query = raw.strip()
    if not query or "\n" in query or SEARCH_OPEN in query:
        return None
    lead = len(raw) - len(raw.lstrip())
    return SearchAction(query=query, start=start + lead, end=start + lead + len(query))


def queries_in(text: str) -> list[tuple[SearchAction, str | None]]:
    """Every well-formed search in a finished trajectory, with the <information> that follows it."""
    found: list[tuple[SearchAction, str | None]] = []
    for match in re.finditer(r"<search>(.*?)</search>", text, re.DOTALL):
        query = match.group(1).strip()
        if not query or "\n" in query:
            continue
        info = re.match(r"\s*<information>(.*?)</information>", text[match.end() :], re.DOTALL)
        action = SearchAction(query, match.start(1), match.end(1))
        found.append((action, info.group(1).strip() if info else None))
    return found


def neutralise(text: str) -> str:
    """Search-result text with every protocol tag removed, so a page can neither close the
    <information> block nor open an <answer> or <search> of its own."""
    previous = None
    while previous != text:  # removing one tag can join the pieces of another
        previous = text
        text = _PROTOCOL_TAG.sub(" ", text)
    return text
