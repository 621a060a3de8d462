"""Unit tests read no SSRL_* variables of the host (the harness itself is in tests/conftest.py)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_ssrl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SSRL_* variables; the host's must not leak into the tests."""
    for name in list(os.environ):
        if name.upper().startswith("SSRL_"):
            monkeypatch.delenv(name)
