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
_SEARCH = re.compile(r"<search>(.*?)</search>", re.DOTALL)
_INFORMATION = re.compile(r"\s*(<information>(.*?)</information>)", re.DOTALL)
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
    #: Character span of the whole ``<search> ... </search>`` block, tags included.
    block_start: int
    block_end: int


@dataclass(frozen=True)
class InformationBlock:
    """An ``<information> ... </information>`` block: its content, stripped, and its character
    span (tags included) in the text it was found in."""

    text: str
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
    return SearchAction(
        query=query,
        start=start + lead,
        end=start + lead + len(query),
        block_start=open_,
        block_end=close + len(SEARCH_CLOSE),
    )


def information_at(text: str, position: int) -> InformationBlock | None:
    """The <information> block that starts at ``position`` (white space before it allowed), as the
    model writes one right after its search; None when the text there is anything else or the block
    is not closed yet."""
    match = _INFORMATION.match(text, position)
    if match is None:
        return None
    return InformationBlock(match.group(2).strip(), match.start(1), match.end(1))


def searches_in(text: str) -> list[tuple[SearchAction, InformationBlock | None]]:
    """Every well-formed search in a finished trajectory, with the <information> block that follows it."""
    found: list[tuple[SearchAction, InformationBlock | None]] = []
    for match in _SEARCH.finditer(text):
        query = match.group(1).strip()
        if not query or "\n" in query:
            continue
        action = SearchAction(query, match.start(1), match.end(1), match.start(), match.end())
        found.append((action, information_at(text, match.end())))
    return found


def queries_in(text: str) -> list[tuple[SearchAction, str | None]]:
    """Every well-formed search in a finished trajectory, with the text of the <information> that
    follows it."""
    return [(action, info.text if info else None) for action, info in searches_in(text)]


def neutralise(text: str) -> str:
    """Search-result text with every protocol tag removed, so a page can neither close the
    <information> block nor open an <answer> or <search> of its own."""
    previous = None
    while previous != text:  # removing one tag can join the pieces of another
        previous = text
        text = _PROTOCOL_TAG.sub(" ", text)
    return text
