"""Unit tests read no SSRL_* variables of the host (the harness itself is in tests/conftest.py), and
the ``fake_vllm`` fixture stands in for vLLM's engine arguments."""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import pytest

from service.engine import vllm as vllm_engine


@pytest.fixture(autouse=True)
def _no_ssrl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read SSRL_* variables; the host's must not leak into the tests."""
    for name in list(os.environ):
        if name.upper().startswith("SSRL_"):
            monkeypatch.delenv(name)


class FakeEngineArgs:
    """Stands in for vLLM's AsyncEngineArgs: records what it was built with, refuses an unknown name."""

    def __init__(self, **kwargs: Any) -> None:
        if "no_such_option" in kwargs:
            raise TypeError("AsyncEngineArgs.__init__() got an unexpected keyword argument 'no_such_option'")
        self.kwargs = kwargs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    """engine_args builds FakeEngineArgs, on a CPU (no CUDA)."""
    module = types.ModuleType("vllm.engine.arg_utils")
    module.AsyncEngineArgs = FakeEngineArgs  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm.engine.arg_utils", module)
    monkeypatch.setattr(vllm_engine, "cuda_available", lambda: False)
