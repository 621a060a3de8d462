"""The options handed to vLLM's engine: a part of the service's settings tree (``--engine.*``,
``SSRL_ENGINE__*``) that lives beside the engine it configures, so the engine imports nothing from
the service around it (as ``search/settings.py`` does for the search backends)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.engine.openmp import IntelOpenMP

#: Speculative decoding methods (``engine.speculation``); ``auto`` is resolved when the engine is built.
Speculation = Literal["auto", "off", "ngram", "suffix"]


class EngineSettings(BaseModel):
    """Options handed to vLLM's engine."""

    model_config = ConfigDict(extra="forbid")

    max_model_len: int | None = Field(
        default=None,
        ge=256,
        le=1_048_576,
        description="Context length (prompt + completion) in tokens; unset = the model's own limit.",
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        default="auto",
        description="Weight and activation dtype; auto = vLLM's choice, except float32 on a CPU "
        "without native bf16 products (AVX-512 BF16 or AMX), where vLLM's bfloat16 is emulated and "
        "several times slower.",
    )
    tensor_parallel_size: int = Field(
        default=1, ge=1, le=64, description="GPUs to shard each layer over (tensor parallel)."
    )
    pipeline_parallel_size: int = Field(
        default=1, ge=1, le=64, description="Pipeline stages (layers split over GPUs or nodes)."
    )
    data_parallel_size: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Engine copies (data parallel) inside this replica, e.g. one per GPU for a model that "
        "fits one GPU; a request's X-Session-ID pins it to one of them (its prefix cache).",
    )
    data_parallel_size_local: int | None = Field(
        default=None, ge=0, le=1024, description="Data-parallel ranks on this node (multi-node); unset = all."
    )
    data_parallel_start_rank: int | None = Field(
        default=None, ge=0, le=1024, description="First data-parallel rank on this node (multi-node)."
    )
    data_parallel_address: str | None = Field(
        default=None, max_length=255, description="Address of the first node, for multi-node data parallel."
    )
    data_parallel_rpc_port: int | None = Field(
        default=None, ge=1, le=65535, description="RPC port on the first node, for multi-node data parallel."
    )
    data_parallel_backend: Literal["mp", "ray"] | None = Field(
        default=None, description="How data-parallel engines start: 'mp' or 'ray'; unset = vLLM's."
    )
    distributed_executor_backend: Literal["mp", "ray"] | None = Field(
        default=None,
        description="How vLLM runs its workers when parallel: 'mp' on one node, 'ray' across nodes; "
        "unset = vLLM's choice.",
    )
    enforce_eager: bool | None = Field(
        default=None,
        description="Disable CUDA graphs / torch.compile; unset = eager on CPU (starts ~4x faster), "
        "graphs on GPU.",
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Share of GPU memory vLLM may take (GPU only)."
    )
    kv_cache_gib: float | None = Field(
        default=None,
        gt=0.0,
        le=4096.0,
        description="KV-cache size in GiB; unset = 1 GiB on CPU, derived from gpu_memory_utilization on GPU.",
    )
    block_size: int | None = Field(
        default=None,
        ge=8,
        le=1024,
        description="KV-cache block size in tokens (prefix-cache granularity); unset = vLLM's "
        "default (128 on CPU, 16 on GPU).",
    )
    max_num_seqs: int = Field(
        default=64, ge=1, le=4096, description="Most sequences the engine batches at once."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Engine-wide random seed.")
    # Speculative decoding. The defaults (auto = suffix, else ngram, for agent traffic; no ngram drafts
    # above 16 sequences a step) rest on bench.client_mode's runs at concurrency 1/4/16/64 (bench/README.md).
    speculation: Speculation = Field(
        default="auto",
        description="Speculative decoding: 'ngram' drafts the next tokens by finding the last few in the "
        "prompt and trajectory (prompt lookup: an SSRL answer quotes the results just injected), "
        "'suffix' by vLLM's suffix decoding (needs the arctic-inference package, which "
        "scripts/setup.sh builds where it finds a C++ compiler), 'off' none; auto = when the server's "
        "default search mode is an agent mode (as for the embedded model) suffix where "
        "arctic-inference is installed, else ngram; off when it is "
        "plain chat. Greedy answers stay the model's own (the target model checks every draft).",
    )
    speculative_tokens: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Most draft tokens per sequence and engine step (vLLM's num_speculative_tokens); "
        "unset = 4 for ngram, vLLM's default for suffix (its tree depth, 24).",
    )
    prompt_lookup_min: int = Field(
        default=2, ge=1, le=64, description="ngram: the shortest run of tokens looked up (prompt_lookup_min)."
    )
    prompt_lookup_max: int = Field(
        default=4, ge=1, le=64, description="ngram: the longest run of tokens looked up (prompt_lookup_max)."
    )
    speculation_max_batch: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="ngram: no drafts in an engine step that batches more sequences than this (vLLM's "
        "num_speculative_tokens_per_batch_size; vLLM drops it with data_parallel_size > 1); unset = 16 "
        "(measured: drafting loses at 64 in flight, bench/README.md); engine.max_num_seqs or more = "
        "speculate at every batch size.",
    )
    intel_openmp: IntelOpenMP = Field(
        default="off",
        description="Run a CPU engine on Intel's OpenMP runtime (libiomp5 from the intel-openmp package, "
        "put in LD_PRELOAD of the engine process), as vLLM asks for speculative decoding on CPU: "
        "auto = where the engine speculates on x86-64 and the library is in this environment; on = "
        "every CPU engine (an error without the library); off = vLLM's default (PyTorch's libgomp), the "
        "default: measured level with auto on 2 cores (bench/README.md). Never on a GPU.",
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Any other vLLM engine argument, passed through to AsyncEngineArgs and validated by "
        'vLLM when the engine is built, as JSON: \'{"swap_space": 4, "max_logprobs": 40}\'.',
    )

    @model_validator(mode="after")
    def _speculation_options_agree(self) -> EngineSettings:
        if self.prompt_lookup_min > self.prompt_lookup_max:
            raise ValueError(
                f"engine.prompt_lookup_min ({self.prompt_lookup_min}) is above engine.prompt_lookup_max "
                f"({self.prompt_lookup_max})"
            )
        if self.speculation == "suffix" and self.speculation_max_batch is not None:
            # vLLM's suffix proposer drafts a fixed number of tokens; its batch-size schedule is ngram's
            raise ValueError("engine.speculation_max_batch works with ngram speculation, not suffix")
        return self
