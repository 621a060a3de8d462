"""Every relative link and image in the README and the docs pages points at something that exists."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.docs.markdown import ROOT, heading_anchors, links, pages


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
