"""``engine.speculation`` and its parameters -> vLLM's ``speculative_config`` (service/engine/vllm.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import CliApp

from service.engine import vllm as vllm_engine
from service.engine.settings import EngineSettings
from service.settings import Settings

NGRAM = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 2, "prompt_lookup_max": 4}
#: The default: no drafts in engine steps batching more than 16 sequences (of engine.max_num_seqs=64).
DEFAULT = {**NGRAM, "num_speculative_tokens_per_batch_size": [(1, 16, 4), (17, 64, 0)]}


@pytest.fixture(autouse=True)
def _suffix_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """arctic-inference is not installed, whatever this machine has (a test that wants it says so)."""
    monkeypatch.setattr(vllm_engine, "suffix_decoding_installed", lambda: False)


def spec(options: EngineSettings, *, agent_traffic: bool = True) -> Any:
    args = vllm_engine.engine_args("m", "served", options, agent_traffic=agent_traffic)
    return args.kwargs.get("speculative_config")


def test_auto_is_ngram_for_agent_traffic_and_off_for_plain_chat(fake_vllm: None) -> None:
    assert EngineSettings().speculation == "auto"
    assert spec(EngineSettings(), agent_traffic=True) == DEFAULT
    assert spec(EngineSettings(), agent_traffic=False) is None
    assert vllm_engine.engine_args("m", "s", EngineSettings()).kwargs.get("speculative_config") is None


def test_auto_is_suffix_for_agent_traffic_where_arctic_inference_is_installed(
    fake_vllm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vllm_engine, "suffix_decoding_installed", lambda: True)
    assert spec(EngineSettings(), agent_traffic=True) == {"method": "suffix"}
    assert spec(EngineSettings(), agent_traffic=False) is None
    assert spec(EngineSettings(speculation="ngram")) == DEFAULT  # an explicit choice stays


def test_suffix_decoding_installed_asks_for_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real check, under a find_spec that knows one package or none
    asked: list[str] = []

    def find_spec(installed: bool) -> Any:
        return lambda name: asked.append(name) or (object() if installed else None)

    monkeypatch.setattr(vllm_engine.importlib.util, "find_spec", find_spec(False))
    assert vllm_engine.suffix_decoding_installed() is False
    monkeypatch.setattr(vllm_engine.importlib.util, "find_spec", find_spec(True))
    assert vllm_engine.suffix_decoding_installed() is True
    assert asked == ["arctic_inference", "arctic_inference"]


def test_an_explicit_choice_wins_over_the_traffic(fake_vllm: None) -> None:
    assert spec(EngineSettings(speculation="off"), agent_traffic=True) is None
    assert spec(EngineSettings(speculation="ngram"), agent_traffic=False) == DEFAULT


def test_ngram_parameters_reach_vllm(fake_vllm: None) -> None:
    options = EngineSettings(
        speculation="ngram", speculative_tokens=6, prompt_lookup_min=1, prompt_lookup_max=3
    )
    assert spec(options) == {
        "method": "ngram",
        "num_speculative_tokens": 6,
        "prompt_lookup_min": 1,
        "prompt_lookup_max": 3,
        "num_speculative_tokens_per_batch_size": [(1, 16, 6), (17, 64, 0)],
    }


def test_max_batch_becomes_vllms_batch_size_schedule(fake_vllm: None) -> None:
    config = spec(EngineSettings(speculation_max_batch=16, max_num_seqs=64))
    assert config["num_speculative_tokens_per_batch_size"] == [(1, 16, 4), (17, 64, 0)]
    # a cap at or above the largest batch: drafts at every batch size, no schedule
    assert spec(EngineSettings(speculation_max_batch=64, max_num_seqs=64)) == NGRAM
    # unset is 16; an engine that never batches more than 16 needs no schedule
    assert spec(EngineSettings(max_num_seqs=16)) == NGRAM
    assert spec(EngineSettings(max_num_seqs=128))["num_speculative_tokens_per_batch_size"] == [
        (1, 16, 4),
        (17, 128, 0),
    ]


def test_the_schedule_means_no_drafts_above_the_cap_to_vllm() -> None:
    """vLLM's own reading of the schedule (the scheduler's dense lookup): 4 drafts at batch sizes
    1..16, none from 17 on."""
    pytest.importorskip("vllm")
    from vllm.v1.spec_decode.dynamic.utils import build_dynamic_sd_schedule_lookup

    config = vllm_engine.speculative_config(
        EngineSettings(speculation_max_batch=16, max_num_seqs=64), agent_traffic=True
    )
    assert config is not None
    lookup = build_dynamic_sd_schedule_lookup(config["num_speculative_tokens_per_batch_size"], 64, 4)
    assert lookup[1:17] == [4] * 16 and lookup[17:] == [0] * 48


def test_every_key_is_a_field_of_vllms_speculative_config() -> None:
    pytest.importorskip("vllm")
    from vllm.config import SpeculativeConfig

    config = vllm_engine.speculative_config(EngineSettings(speculation_max_batch=8), agent_traffic=True)
    assert config is not None
    assert set(config) <= set(SpeculativeConfig.__dataclass_fields__)


def test_suffix_needs_arctic_inference(fake_vllm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="pip install arctic-inference"):
        spec(EngineSettings(speculation="suffix"))
    monkeypatch.setattr(vllm_engine, "suffix_decoding_installed", lambda: True)
    assert spec(EngineSettings(speculation="suffix")) == {"method": "suffix"}  # vLLM picks the depth
    assert spec(EngineSettings(speculation="suffix", speculative_tokens=8)) == {
        "method": "suffix",
        "num_speculative_tokens": 8,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"speculation": "sometimes"},
        {"speculative_tokens": 0},
        {"prompt_lookup_min": 0},
        {"prompt_lookup_min": 5, "prompt_lookup_max": 4},
        {"speculation_max_batch": 0},
        {"speculation": "suffix", "speculation_max_batch": 16},
    ],
)
def test_bad_speculation_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EngineSettings(**kwargs)


def test_extra_speculative_config_wins_over_auto_only(fake_vllm: None) -> None:
    mine = {"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 3}
    assert spec(EngineSettings(extra={"speculative_config": mine})) == mine
    with pytest.raises(ValueError, match="engine.extra sets speculative_config and engine.speculation"):
        spec(EngineSettings(speculation="off", extra={"speculative_config": mine}))


def test_speculation_from_the_environment_and_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSRL_ENGINE__SPECULATION", "off")
    monkeypatch.setenv("SSRL_ENGINE__SPECULATION_MAX_BATCH", "16")
    assert (Settings().engine.speculation, Settings().engine.speculation_max_batch) == ("off", 16)
    monkeypatch.delenv("SSRL_ENGINE__SPECULATION")
    monkeypatch.delenv("SSRL_ENGINE__SPECULATION_MAX_BATCH")
    flags = ["--engine.speculation", "ngram", "--engine.speculative-tokens", "3"]
    flags += ["--engine.prompt-lookup-max", "5"]
    engine = CliApp.run(Settings, cli_args=flags).engine
    assert (engine.speculation, engine.speculative_tokens, engine.prompt_lookup_max) == ("ngram", 3, 5)


async def test_the_server_speculates_for_agent_traffic_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_vllm_engine resolves auto from the server's default search mode."""
    from service import app as app_module
    from service.engine import model_files

    seen: list[bool] = []

    async def create(model: str, served: str, options: EngineSettings, *, agent_traffic: bool) -> str:
        seen.append(agent_traffic)
        return "engine"

    monkeypatch.setattr(model_files, "resolve_model", lambda model, cache: "/models/x")
    monkeypatch.setattr(vllm_engine.VllmEngine, "create", create)
    await app_module.load_vllm_engine(Settings(), "ssrl-smollm2-135m")  # the embedded SSRL model: real
    await app_module.load_vllm_engine(Settings(search_mode="off"), "ssrl-smollm2-135m")
    await app_module.load_vllm_engine(Settings(model="Qwen/Qwen2.5-3B-Instruct"), "qwen")  # plain: off
    assert seen == [True, False, False]
