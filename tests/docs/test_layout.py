"""docs/layout.md's tree is the repository's: every path it names exists, and nothing it should name
is missing. The test reads both the page and the files on disk, so a module added, moved or removed
fails here until its line in the tree changes too."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.markdown import ROOT, fenced_blocks

LAYOUT = ROOT / "docs" / "layout.md"
TREE_HEADING = "The tree"
#: Directories whose every module must be named, whatever the tree lists under them.
ALWAYS_COMPLETE = ("service/",)


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the repository root; directories end with "/"
    description: str
    line: int
    has_children: bool


def parse_tree(block: str) -> list[Entry]:
    """One entry per line: two spaces of indentation per level, the name (a directory ends with /,
    a name may hold a sub-path such as clients/ssrl_client/), then two or more spaces and what it is."""
    lines = [(number, line) for number, line in enumerate(block.splitlines(), 1) if line.strip()]
    parents: list[str] = []
    parsed: list[tuple[int, str, str, int]] = []
    for number, line in lines:
        match = re.fullmatch(r"( *)(\S+)(?: {2,}(\S.*))?", line)
        assert match, f"layout line {number} is not 'name  description': {line!r}"
        indent, name, description = len(match.group(1)), match.group(2), match.group(3) or ""
        assert indent % 2 == 0, f"layout line {number}: indent by two spaces per level"
        depth = indent // 2
        assert depth <= len(parents), f"layout line {number}: indented under a line that is not a directory"
        parents = parents[:depth]
        if depth:
            assert parents[-1].endswith("/"), f"layout line {number}: {parents[-1]} is not a directory"
        path = (parents[-1] if depth else "") + name
        parsed.append((number, path, description, depth))
        parents.append(path)
    entries = []
    for index, (number, path, description, depth) in enumerate(parsed):
        following = parsed[index + 1][3] if index + 1 < len(parsed) else 0
        entries.append(Entry(path, description, number, has_children=following > depth))
    return entries


def repository_files() -> set[str]:
    """The repository's files: what git tracks plus what it would track (not ignored); without git,
    every file on disk outside hidden, cache and build folders."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return {name for name in listed.split("\0") if name and (ROOT / name).exists()}
    except (OSError, subprocess.CalledProcessError):
        skip = re.compile(r"(^|/)(\.[^/]+|__pycache__|[^/]+\.egg-info|build|dist|runs)/")
        files = (path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*") if path.is_file())
        return {name for name in files if not skip.search(name)}


def children(files: set[str], directory: str) -> tuple[set[str], set[str]]:
    """(files, subdirectories/) directly inside ``directory`` ("" for the root)."""
    direct_files, subdirectories = set(), set()
    for name in files:
        if not name.startswith(directory):
            continue
        rest = name[len(directory) :]
        if "/" in rest:
            subdirectories.add(directory + rest.split("/", 1)[0] + "/")
        else:
            direct_files.add(name)
    return direct_files, subdirectories


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    (block,) = fenced_blocks(LAYOUT.read_text(), TREE_HEADING)
    return parse_tree(block)


@pytest.fixture(scope="module")
def files() -> set[str]:
    return repository_files()


def test_every_named_path_exists(entries: list[Entry]) -> None:
    missing = []
    for entry in entries:
        path = ROOT / entry.path
        exists = path.is_dir() if entry.path.endswith("/") else path.is_file()
        if not exists:
            missing.append(f"docs/layout.md tree line {entry.line}: {entry.path}")
    assert not missing, "named in the layout but not in the repository:\n" + "\n".join(missing)


def test_every_line_says_what_it_is(entries: list[Entry]) -> None:
    assert [entry.path for entry in entries if not entry.description] == []
    assert len({entry.path for entry in entries}) == len(entries), "a path is named twice"


def test_every_top_level_entry_is_named(entries: list[Entry], files: set[str]) -> None:
    named = {entry.path for entry in entries}
    top_files, top_directories = children(files, "")
    expected = {name for name in top_files | top_directories if not name.startswith(".")}
    missing = sorted(expected - named)
    assert not missing, "top-level entries missing from docs/layout.md:\n" + "\n".join(missing)


def test_every_service_module_is_named(entries: list[Entry], files: set[str]) -> None:
    named = {entry.path for entry in entries}
    for root in ALWAYS_COMPLETE:
        assert root in named, f"{root} is not in docs/layout.md"
        modules = {
            name
            for name in files
            if name.startswith(root) and name.endswith(".py") and Path(name).name != "__init__.py"
        }
        packages = {
            str(Path(name).parent) + "/" for name in files if name.startswith(root) and name.endswith(".py")
        }
        assert modules, f"no modules found under {root}"
        missing = sorted((modules | packages) - named)
        assert not missing, f"modules under {root} missing from docs/layout.md:\n" + "\n".join(missing)


def test_listed_directories_are_complete(entries: list[Entry], files: set[str]) -> None:
    """A directory whose contents the tree lists names all its subdirectories and, for a Python
    package, all its modules (its __init__.py is the package's own line)."""
    named = {entry.path for entry in entries}
    missing = []
    for entry in entries:
        if not (entry.path.endswith("/") and entry.has_children):
            continue
        direct_files, subdirectories = children(files, entry.path)
        expected = set(subdirectories)
        if entry.path + "__init__.py" in direct_files:
            expected |= {name for name in direct_files if name.endswith(".py")} - {entry.path + "__init__.py"}
        missing += sorted(expected - named)
    assert not missing, "in listed directories but missing from docs/layout.md:\n" + "\n".join(missing)


def test_the_tree_parser() -> None:
    block = "a.txt   a file\npkg/    a package\n  mod.py  a module\n  sub/  a folder\n    x.py  deep\n"
    block += "b/  another\n"
    parsed = parse_tree(block)
    assert [(e.path, e.has_children) for e in parsed] == [
        ("a.txt", False),
        ("pkg/", True),
        ("pkg/mod.py", False),
        ("pkg/sub/", True),
        ("pkg/sub/x.py", False),
        ("b/", False),
    ]
    with pytest.raises(AssertionError, match="not a directory"):
        parse_tree("a.py  a module\n  b.py  under a file\n")
