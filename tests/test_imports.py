"""The import graph of service/: no import runs in a loop, between modules or between rooms (a
top-level module or a folder: engine/ and settings.py in particular), and engine/ stands on its own,
configured by its own settings module."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """Every module ``path`` imports, wherever the import stands (TYPE_CHECKING blocks and imports
    inside functions count: a loop is a loop to the reader and to mypy)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                names.add(child if child in known else node.module)
    return names


def _graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    known = set(modules)
    return {name: imported(path, known) & known for name, path in modules.items()}


def _cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def _cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    for name in graph:
        # a package's __init__ importing its own submodules is how packages re-export, not a loop
        edges = {k: {v for v in vs if not v.startswith(k + ".")} for k, vs in graph.items()}
        cycle = _cycle_from(edges, name)
        if cycle:
            yield cycle


def _room(module: str) -> str:
    """``service.engine.vllm`` is in ``service.engine``; ``service.settings`` is its own room."""
    return ".".join(module.split(".")[:2])


def test_no_import_runs_in_a_loop_between_modules() -> None:
    cycles = list(_cycles(_graph("service")))
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_no_import_runs_in_a_loop_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for module, targets in _graph("service").items():
        here = _room(module)
        rooms.setdefault(here, set()).update(_room(t) for t in targets if _room(t) != here)
    cycles = list(_cycles(rooms))
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_the_engine_imports_nothing_of_the_service_around_it() -> None:
    for name, path in _modules("service/engine").items():
        outside = {
            m
            for m in imported(path, set())
            if m.split(".")[0] == "service" and not m.startswith("service.engine")
        }
        assert not outside, f"{name} imports {sorted(outside)}"


@pytest.mark.parametrize(
    "order",
    [
        ("service.engine.vllm", "service.settings"),
        ("service.settings", "service.engine.vllm"),
        ("service.engine.settings",),
    ],
)
def test_settings_and_engine_import_in_either_order(order: tuple[str, ...]) -> None:
    code = "import sys\n" + "".join(f"import {m}\n" for m in order)
    if order == ("service.engine.settings",):
        code += (
            "assert 'service.settings' not in sys.modules, 'engine settings pulled in the service settings'\n"
        )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_service_imports_none_of_its_tools_nor_its_own_client() -> None:
    """ssrl-eval (evals/), the benchmarks, ssrl-train and the SDK stand on the service, not in it."""
    tools = {"ssrl_client", "evals", "bench", "train", "tests"}
    for name, path in _modules("service").items():
        used = {m.split(".")[0] for m in imported(path, set())} & tools
        assert not used, f"{name} imports {sorted(used)}"
