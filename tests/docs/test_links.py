"""Every relative link and image in the README and the docs pages points at something that exists."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.docs.markdown import ROOT, heading_anchors, links, pages

#: A path inside the repository, as pages write it in code: `service/engine/vllm.py`, `bench/results/`.
_REPO_PATH = re.compile(r"^(?:service|clients|train|bench|tests|deploy|scripts|docs|\.ci)/\S*")


def _local_targets(page: Path) -> list[tuple[int, str]]:
    return [
        (number, target)
        for number, target in links(page.read_text())
        if target and not target.startswith(("http://", "https://", "mailto:"))
    ]


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for number, target in _local_targets(page):
        path_part, _, anchor = target.partition("#")
        path = (page.parent / unquote(path_part)).resolve() if path_part else page
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        if not path.exists():
            broken.append(f"{where} (no such file)")
        elif ROOT not in path.parents and path != ROOT:
            broken.append(f"{where} (outside the repository)")
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path.read_text()):
            broken.append(f"{where} (no heading with that anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_reader_sees_links_and_skips_code() -> None:
    text = (
        "See [a](docs/a.md#part), ![img](docs/p.png) and [web](https://example.org).\n"
        "`[not](a link)` is code.\n"
        "```\n[also](not a link)\n```\n"
    )
    assert [target for _, target in links(text)] == ["docs/a.md#part", "docs/p.png", "https://example.org"]


def test_anchors_follow_github() -> None:
    text = (
        "# The embedded SSRL model: `ssrl-smollm2-135m`\n"
        "## Soak: does memory keep growing?\n## Tests\n## Tests\n"
    )
    assert heading_anchors(text) == {
        "the-embedded-ssrl-model-ssrl-smollm2-135m",
        "soak-does-memory-keep-growing",
        "tests",
        "tests-1",
    }


def _expand_braces(pattern: str) -> list[str]:
    """``ssrl-{dev,test}.jsonl`` -> both names."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [name for part in match.group(1).split(",") for name in _expand_braces(head + part + tail)]


def _code_paths(text: str) -> list[tuple[int, str]]:
    """(line, path) of every repository path written in inline code, outside fenced blocks."""
    found = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        for span in re.findall(r"`([^`]+)`", line):
            for word in span.split():
                match = _REPO_PATH.match(word)
                if match:
                    path = match.group(0).rstrip(".,;:)'\"")
                    found.append((number, re.sub(r":\d+$", "", path)))  # file.py:114 names a line
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_repository_paths_in_code_exist(page: Path) -> None:
    """`service/...`, `bench/...` and the like, named in the text, are still there (globs match)."""
    missing = []
    for number, path in _code_paths(page.read_text()):
        for name in _expand_braces(path):
            exists = any(ROOT.glob(name)) if any(c in name for c in "*?[") else (ROOT / name).exists()
            if not exists:
                missing.append(f"{page.relative_to(ROOT)}:{number}: {name}")
    assert not missing, "paths named in the text that are not in the repository:\n" + "\n".join(missing)


def test_code_paths_are_read_with_globs_and_braces() -> None:
    text = "See `bench/data/ssrl-{dev,test}.jsonl` and `service/engine/vllm.py:114`, not `foo/bar`.\n"
    assert _code_paths(text) == [(1, "bench/data/ssrl-{dev,test}.jsonl"), (1, "service/engine/vllm.py")]
    assert _expand_braces("a/{b,c}.md") == ["a/b.md", "a/c.md"]
