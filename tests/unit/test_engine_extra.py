"""``engine.extra``: any vLLM engine argument the settings tree does not mirror reaches AsyncEngineArgs."""

from __future__ import annotations

import pytest
from pydantic_settings import CliApp

from service.engine import vllm as vllm_engine
from service.engine.settings import EngineSettings
from service.settings import Settings


def test_extra_reaches_the_engine_args(fake_vllm: None) -> None:
    args = vllm_engine.engine_args("m", "served", EngineSettings(extra={"swap_space": 4, "max_logprobs": 40}))
    assert args.kwargs["swap_space"] == 4 and args.kwargs["max_logprobs"] == 40
    assert args.kwargs["model"] == "m" and args.kwargs["enable_prefix_caching"] is True


def test_an_unknown_or_mirrored_argument_is_refused(fake_vllm: None) -> None:
    with pytest.raises(ValueError, match="engine.extra: .*'no_such_option'"):
        vllm_engine.engine_args("m", "s", EngineSettings(extra={"no_such_option": 1}))
    with pytest.raises(ValueError, match="engine.extra sets max_num_seqs"):
        vllm_engine.engine_args("m", "s", EngineSettings(extra={"max_num_seqs": 8}))


def test_extra_from_the_environment_and_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSRL_ENGINE__EXTRA", '{"swap_space": 4}')
    assert Settings().engine.extra == {"swap_space": 4}
    monkeypatch.delenv("SSRL_ENGINE__EXTRA")
    assert Settings().engine.extra == {}
    cli = CliApp.run(Settings, cli_args=["--engine.extra", '{"max_logprobs": 40}'])
    assert cli.engine.extra == {"max_logprobs": 40}


def test_vllm_itself_validates_extra() -> None:
    pytest.importorskip("vllm")
    args = vllm_engine.engine_args("m", "served", EngineSettings(extra={"max_logprobs": 7}))
    assert args.max_logprobs == 7
    with pytest.raises(ValueError, match="no_such_option"):
        vllm_engine.engine_args("m", "served", EngineSettings(extra={"no_such_option": 1}))


def test_the_resolved_dtype_reaches_the_engine_args(fake_vllm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vllm_engine, "cpu_flags", lambda: frozenset({"avx2"}))
    assert vllm_engine.engine_args("m", "s", EngineSettings()).kwargs["dtype"] == "float32"
    assert vllm_engine.engine_args("m", "s", EngineSettings(dtype="bfloat16")).kwargs["dtype"] == "bfloat16"
