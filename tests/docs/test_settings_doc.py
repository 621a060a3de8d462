"""docs/settings.md's reference is the settings tree, rendered: it is up to date, and every flag and
environment variable it names really sets its field (checked through pydantic-settings itself)."""

from __future__ import annotations

import importlib.util
import json
import sys
import typing
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import CliApp

from service.settings import Settings
from tests.docs.markdown import ROOT


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_doc", ROOT / "scripts" / "settings_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


settings_doc = _load_script()
LEAVES = settings_doc.leaves(Settings)


def test_settings_reference_is_up_to_date() -> None:
    page = settings_doc.DOC.read_text()
    assert settings_doc.splice(page, settings_doc.render(Settings)) == page, (
        "docs/settings.md is out of date with the settings tree: run .venv/bin/python scripts/settings_doc.py"
    )


def test_every_setting_has_a_row() -> None:
    page = settings_doc.DOC.read_text()
    names = {leaf.name for leaf in LEAVES}
    assert {"port", "engine.max_model_len", "agent.max_turns", "search.serper.api_key"} <= names
    for leaf in LEAVES:
        assert f"| `{leaf.name}` | `{settings_doc.cli_flag(Settings, leaf).split(', ')[0]}`" in page
        assert leaf.field.description, f"{leaf.name} has no description"


def test_every_flag_is_in_the_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        CliApp.run(Settings, cli_args=["--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for leaf in LEAVES:
        for flag in settings_doc.cli_flag(Settings, leaf).split(", "):
            assert f"[{flag}" in help_text or f"| {flag}]" in help_text, flag


def _scalar(annotation: Any) -> Any:
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return args[0] if typing.get_origin(annotation) in (typing.Union, type(int | None)) else annotation


def _candidates(leaf: Any) -> list[tuple[str, Any]]:
    """Values other than the default that the field may accept: (as text, as the field holds it)."""
    field = leaf.field
    kind = _scalar(field.annotation)
    meta = {type(m).__name__: m for m in field.metadata}
    current = field.default
    if typing.get_origin(kind) is Literal:
        return [(choice, choice) for choice in typing.get_args(kind) if choice != current]
    if kind is bool:
        return [("true", True)]
    if kind in (int, float):
        low = getattr(meta.get("Ge"), "ge", None)
        if low is None and "Gt" in meta:
            low = meta["Gt"].gt + (1 if kind is int else 0.25)
        high = getattr(meta.get("Le"), "le", None)
        values = [v for v in (low, high, 1, 2) if v is not None and v != current]
        return [(str(kind(v)), kind(v)) for v in values]
    if kind is Path:
        return [("/tmp/ssrl-settings-doc", Path("/tmp/ssrl-settings-doc"))]
    if kind is SecretStr:
        return [("doc-key", "doc-key")]
    if kind is str:
        return [(v, v) for v in ("example", "http://example.test", "searxng") if v != current]
    if typing.get_origin(kind) is list:
        return [("http://a.test,http://b.test", ["http://a.test", "http://b.test"])]
    if typing.get_origin(kind) is dict:
        return [(json.dumps({"swap_space": 4}), {"swap_space": 4})]
    raise AssertionError(f"no test value for {leaf.name}: {kind}")


def _value(settings: BaseModel, path: tuple[str, ...]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
    return value


def _first_accepted(leaf: Any, build: typing.Callable[[str], Settings]) -> tuple[Any, Any]:
    for text, expected in _candidates(leaf):
        try:
            return _value(build(text), leaf.path), expected
        except ValidationError:
            continue
    raise AssertionError(f"no candidate value was accepted for {leaf.name}")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.upper().startswith("SSRL_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: leaf.name)
def test_the_documented_environment_variable_sets_the_field(leaf: Any, clean_environment) -> None:
    variable = settings_doc.env_var(Settings, leaf)

    def build(text: str) -> Settings:
        clean_environment.setenv(variable, text)
        return Settings()

    got, expected = _first_accepted(leaf, build)
    assert got == expected, f"{variable} did not set {leaf.name}"


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: leaf.name)
def test_the_documented_flag_sets_the_field(leaf: Any, clean_environment) -> None:
    flag = settings_doc.cli_flag(Settings, leaf).split(", ")[0]

    def build(text: str) -> Settings:
        args = [flag] if settings_doc.is_bool(leaf) else [flag, text]
        return CliApp.run(Settings, cli_args=args)

    got, expected = _first_accepted(leaf, build)
    assert got == expected, f"{flag} did not set {leaf.name}"
