"""The e2e marker is the one way an end-to-end test is marked (tests/conftest.py): every module in
tests/e2e/ carries it as ``pytestmark``, so none of them runs in the fast suite by mistake."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent / "e2e"


def _module_marks(path: Path) -> list[str]:
    marks = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            marks.append(ast.unparse(node.value))
    return marks


@pytest.mark.parametrize("path", sorted(E2E.glob("test_*.py")), ids=lambda p: p.name)
def test_every_e2e_module_is_marked(path: Path) -> None:
    assert _module_marks(path) == ["pytest.mark.e2e"]


def test_each_xdist_worker_binds_its_engines_to_its_own_core() -> None:
    from tests.conftest import worker_core

    assert [worker_core(f"gw{i}", 2) for i in range(3)] == ["0", "1", "0"]
    assert worker_core(None, 2) is None  # not under xdist: vLLM's own binding
    assert worker_core("gw1", 1) is None  # one core: nothing to share out
