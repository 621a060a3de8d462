"""Settings from keyword arguments, SSRL_* environment variables and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import CliApp

from service.engine.settings import EngineSettings
from service.settings import EMBEDDED_MODEL_NAME, Settings


def keys(settings: Settings) -> list[str]:
    return [k.get_secret_value() for k in settings.api_keys]


def test_defaults() -> None:
    s = Settings()
    assert (s.host, s.port, s.max_concurrency, s.search_mode) == ("127.0.0.1", 8000, 64, None)
    assert s.api_keys == [] and s.engine.max_model_len is None


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSRL_PORT", "9001")
    monkeypatch.setenv("SSRL_ENGINE__MAX_MODEL_LEN", "4096")
    monkeypatch.setenv("SSRL_API_KEYS", "a,b")
    monkeypatch.setenv("SSRL_MAX_CONCURRENCY", "3")
    s = Settings()
    assert s.port == 9001
    assert s.engine.max_model_len == 4096
    assert keys(s) == ["a", "b"]
    assert s.max_concurrency == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a,b", ["a", "b"]), (" a , b ,", ["a", "b"]), ("solo", ["solo"]), ('["a", "b"]', ["a", "b"]), ("", [])],
)
def test_api_keys_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("SSRL_API_KEYS", value)
    assert keys(Settings()) == expected


def test_api_keys_are_not_shown() -> None:
    s = Settings(api_keys=["sekrit-key"])
    assert "sekrit-key" not in repr(s) and "sekrit-key" not in str(s.model_dump())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 65536},
        {"max_concurrency": 0},
        {"max_n": 0},
        {"max_body_bytes": 10},
        {"search_mode": "sometimes"},
        {"engine": {"max_model_len": 100}},
        {"engine": {"gpu_memory_utilization": 0}},
        {"engine": {"no_such_option": 1}},
    ],
)
def test_out_of_bounds_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_out_of_bounds_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSRL_PORT", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_command_line() -> None:
    s = CliApp.run(
        Settings, cli_args=["--port", "9000", "--engine.max-model-len", "2048", "--api-keys", "a,b"]
    )
    assert s.port == 9000
    assert s.engine.max_model_len == 2048
    assert keys(s) == ["a", "b"]


def test_command_line_rejects_out_of_bounds() -> None:
    with pytest.raises((ValidationError, SystemExit)):
        CliApp.run(Settings, cli_args=["--port", "0"])


def test_engine_settings_bounds() -> None:
    assert EngineSettings(max_model_len=256).max_model_len == 256
    with pytest.raises(ValidationError):
        EngineSettings(tensor_parallel_size=0)


def test_resolved_model_name(tmp_path: Path) -> None:
    assert Settings().resolved_model_name() == EMBEDDED_MODEL_NAME == "ssrl-smollm2-135m"
    assert Settings(model="smollm2-135m-instruct").resolved_model_name() == "smollm2-135m-instruct"
    assert Settings(model="Qwen/Qwen2.5-3B-Instruct").resolved_model_name() == "Qwen/Qwen2.5-3B-Instruct"
    local = tmp_path / "my-finetune"
    local.mkdir()
    assert Settings(model=str(local)).resolved_model_name() == "my-finetune"
    assert Settings(model=str(local), served_model_name="prod").resolved_model_name() == "prod"


def test_ssrl_models_search_by_default_and_plain_models_chat() -> None:
    assert Settings().default_search_mode() == "real"  # the embedded SSRL model
    assert Settings(model="TsinghuaC3I/Qwen2.5-7B-Instruct-SSRL").default_search_mode() == "real"
    assert Settings(model="smollm2-135m-instruct").default_search_mode() == "off"
    assert Settings(model="Qwen/Qwen2.5-3B-Instruct").default_search_mode() == "off"
    assert Settings(search_mode="self").default_search_mode() == "self"
    assert (
        Settings(model="Qwen/Qwen2.5-3B-Instruct", search_mode="entropy").default_search_mode() == "entropy"
    )
