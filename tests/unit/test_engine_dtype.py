"""engine.dtype=auto on a CPU: float32 where bf16 products would be emulated, vLLM's choice elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.engine import vllm as vllm_engine

AVX2 = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})
AVX512_BF16 = AVX2 | {"avx512f", "avx512_bf16"}
AMX = AVX2 | {"avx512f", "amx_tile", "amx_bf16"}


@pytest.mark.parametrize(
    ("dtype", "on_gpu", "flags", "resolved"),
    [
        ("auto", False, AVX2, "float32"),  # the AVX2-only EPYC here: vLLM's bf16 is emulated
        ("auto", False, AVX2 | {"avx512f"}, "float32"),  # AVX-512 without its BF16 extension
        ("auto", False, AVX512_BF16, "auto"),
        ("auto", False, AMX, "auto"),
        ("auto", True, AVX2, "auto"),  # a GPU: vLLM's choice
        ("bfloat16", False, AVX2, "bfloat16"),  # asked for: kept
        ("auto", False, frozenset(), "auto"),  # flags unknown: vLLM's choice
    ],
)
def test_auto_resolves_by_the_cpus_bf16_support(
    dtype: str, on_gpu: bool, flags: frozenset[str], resolved: str
) -> None:
    assert vllm_engine.resolve_dtype(dtype, on_gpu=on_gpu, flags=flags) == resolved


def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx avx2 fma\n\n")
    assert vllm_engine.cpu_flags(info) == frozenset({"fpu", "avx", "avx2", "fma"})
    assert vllm_engine.cpu_flags(tmp_path / "missing") == frozenset()
