"""The vLLM engine, in-process through ``AsyncLLM`` (no HTTP hop to a second server)."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from service.engine.base import (
    ChatMessageDict,
    EngineDeadError,
    EngineError,
    EngineInputError,
    GenerationChunk,
    RepetitionStop,
    SamplingOptions,
    StructuredOutput,
    TokenLogprob,
    TopLogprob,
)
from service.engine.openmp import preload_intel_openmp
from service.engine.settings import EngineSettings
from service.engine.vllm_metrics import stat_logger_class

logger = logging.getLogger(__name__)

GiB = 1024**3


def cuda_available() -> bool:
    """Whether vLLM will run on a GPU (the CPU build reports its platform as cpu)."""
    try:
        from vllm.platforms import current_platform
    except ImportError:  # pragma: no cover - vllm is a hard requirement at run time
        return False
    return bool(current_platform.is_cuda_alike())


#: CPU flags of native bf16 products (AVX-512 BF16, AMX); without them vLLM's CPU kernels emulate bf16.
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def resolve_dtype(dtype: str, *, on_gpu: bool, flags: frozenset[str] | None = None) -> str:
    """``engine.dtype`` with ``auto`` resolved on a CPU: float32 where the CPU has no native bf16
    products. vLLM's auto picks bfloat16 on every CPU; on an AVX2-only CPU (the 2-core machines here)
    that is emulated, and the embedded model served 3.8x fewer tokens a second than in float32
    (bench/README.md, "dtype on the CPU"). Elsewhere (a GPU, a CPU with AVX-512 BF16 or AMX, or a
    dtype asked for) it is vLLM's own choice."""
    if dtype != "auto" or on_gpu:
        return dtype
    have = cpu_flags() if flags is None else flags
    if not have or have & _BF16_FLAGS:
        return dtype
    return "float32"


#: Draft tokens per step for ngram speculation when engine.speculative_tokens is unset.
NGRAM_TOKENS = 4
#: No ngram drafts in engine steps batching more sequences when engine.speculation_max_batch is unset
#: (bench/README.md, "The full run": drafting at 64 in flight cost 7-9 % of questions/s, capped at 16 none).
NGRAM_MAX_BATCH = 16


def suffix_decoding_installed() -> bool:
    """Whether vLLM's suffix decoding can run: it lives in the arctic-inference package."""
    return importlib.util.find_spec("arctic_inference") is not None


def speculation_method(options: EngineSettings, *, agent_traffic: bool) -> str:
    """``engine.speculation`` with ``auto`` resolved: for agent traffic (the server's default search
    mode is an agent mode: its trajectories quote the results injected into them) suffix decoding
    where arctic-inference is installed (measured ahead of ngram, bench/README.md "Suffix
    decoding"), else ngram; off for plain chat."""
    if options.speculation != "auto":
        return options.speculation
    if not agent_traffic:
        return "off"
    return "suffix" if suffix_decoding_installed() else "ngram"


def speculative_config(options: EngineSettings, *, agent_traffic: bool) -> dict[str, Any] | None:
    """vLLM's ``speculative_config`` for the engine settings; None when speculation is off."""
    method = speculation_method(options, agent_traffic=agent_traffic)
    if method == "off":
        return None
    if method == "suffix":
        if not suffix_decoding_installed():
            raise ValueError(
                "engine.speculation=suffix needs vLLM's suffix decoding from the arctic-inference "
                "package: pip install arctic-inference (it builds a C++ extension from source)"
            )
        config: dict[str, Any] = {"method": "suffix"}
        if options.speculative_tokens is not None:
            config["num_speculative_tokens"] = options.speculative_tokens
        return config
    tokens = options.speculative_tokens or NGRAM_TOKENS
    config = {
        "method": "ngram",
        "num_speculative_tokens": tokens,
        "prompt_lookup_min": options.prompt_lookup_min,
        "prompt_lookup_max": options.prompt_lookup_max,
    }
    cap = options.speculation_max_batch if options.speculation_max_batch is not None else NGRAM_MAX_BATCH
    if cap < options.max_num_seqs:
        # vLLM's own batch-size schedule: `tokens` drafts up to `cap` sequences a step, none above
        schedule = [(1, cap, tokens), (cap + 1, options.max_num_seqs, 0)]
        config["num_speculative_tokens_per_batch_size"] = schedule
    return config


def engine_args(model: str, served_name: str, options: EngineSettings, *, agent_traffic: bool = False) -> Any:
    """Translate the service's engine settings into vLLM's ``AsyncEngineArgs``; ``options.extra``
    is passed through as it is, for vLLM to validate. ``agent_traffic`` (the server's default search
    mode is an agent mode) resolves ``engine.speculation=auto``."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    on_gpu = cuda_available()
    kwargs: dict[str, Any] = {
        "model": model,
        "served_model_name": [served_name],
        "dtype": resolve_dtype(options.dtype, on_gpu=on_gpu),
        "tensor_parallel_size": options.tensor_parallel_size,
        "pipeline_parallel_size": options.pipeline_parallel_size,
        "enforce_eager": (not on_gpu) if options.enforce_eager is None else options.enforce_eager,
        "enable_prefix_caching": True,
        "max_num_seqs": options.max_num_seqs,
        "seed": options.seed,
        "disable_log_stats": True,
        "gpu_memory_utilization": options.gpu_memory_utilization,
        "data_parallel_size": options.data_parallel_size,
    }
    for name in (
        "data_parallel_size_local",
        "data_parallel_start_rank",
        "data_parallel_address",
        "data_parallel_rpc_port",
        "data_parallel_backend",
    ):
        if getattr(options, name) is not None:
            kwargs[name] = getattr(options, name)
    if options.max_model_len is not None:
        kwargs["max_model_len"] = options.max_model_len
    if options.distributed_executor_backend is not None:
        kwargs["distributed_executor_backend"] = options.distributed_executor_backend
    if options.block_size is not None:
        kwargs["block_size"] = options.block_size
    kv_gib = options.kv_cache_gib if options.kv_cache_gib is not None else (None if on_gpu else 1.0)
    if kv_gib is not None:
        kwargs["kv_cache_memory_bytes"] = int(kv_gib * GiB)
    if "speculative_config" in options.extra:
        if options.speculation != "auto":  # two answers to one question: refuse rather than pick one
            raise ValueError(
                f"engine.extra sets speculative_config and engine.speculation is {options.speculation!r}: "
                "set one of them (engine.extra's wins only over speculation=auto)"
            )
    else:
        spec = speculative_config(options, agent_traffic=agent_traffic)
        if spec is not None:
            kwargs["speculative_config"] = spec
    mirrored = sorted(set(options.extra) & set(kwargs))
    if mirrored:
        raise ValueError(
            f"engine.extra sets {', '.join(mirrored)}, which the service already sets from its own "
            "settings (ssrl-serve --help)"
        )
    try:
        return AsyncEngineArgs(**kwargs, **options.extra)
    except TypeError as exc:  # an argument this vLLM does not have
        raise ValueError(f"engine.extra: {exc}") from exc


def data_parallel_rank(session_key: str | None, size: int) -> int | None:
    """The data-parallel rank a session is pinned to: stable for a key, spread over ranks; None
    (vLLM balances by load) without a key or without data parallelism."""
    if not session_key or size <= 1:
        return None
    return int.from_bytes(hashlib.sha256(session_key.encode()).digest()[:8], "big") % size


def _prompt_builder() -> Any:
    """vLLM's engine-input constructor for token prompts; raw ``TokensPrompt`` on older vLLM."""
    try:
        from vllm.inputs.engine import tokens_input
    except ImportError:
        from vllm.inputs import TokensPrompt

        return lambda ids: TokensPrompt(prompt_token_ids=ids)
    return tokens_input


def _structured_outputs(structured: StructuredOutput | None) -> Any:
    """vLLM's in-process structured-output parameters (its own JSON mode and JSON schema)."""
    if structured is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if structured.json_schema is None:
        return StructuredOutputsParams(json_object=True)
    return StructuredOutputsParams(json=structured.json_schema)


def _repetition_detection(repetition: RepetitionStop | None) -> Any:
    """vLLM's own repetition stop (its scheduler checks it after every token)."""
    if repetition is None:
        return None
    from vllm.sampling_params import RepetitionDetectionParams

    return RepetitionDetectionParams(
        max_pattern_size=repetition.max_pattern,
        min_pattern_size=repetition.min_pattern,
        min_count=repetition.min_count,
    )


def _convert_prompt_logprobs(entries: Any, token_ids: list[int], k: int) -> list[TokenLogprob | None]:
    """vLLM's prompt logprobs (None for the first token) in the engine-neutral form."""
    out: list[TokenLogprob | None] = []
    for token_id, position in zip(token_ids, entries or [], strict=False):
        out.append(None if position is None else _convert_logprobs([position], [token_id], k)[0])
    return out


def _convert_logprobs(entries: Any, token_ids: list[int], k: int) -> list[TokenLogprob]:
    out: list[TokenLogprob] = []
    for token_id, position in zip(token_ids, entries or [], strict=False):
        chosen = position.get(token_id)
        ranked = sorted(position.items(), key=lambda item: item[1].rank or 0)
        top = tuple(
            TopLogprob(token=lp.decoded_token or "", token_id=tid, logprob=float(lp.logprob))
            for tid, lp in ranked[:k]
        )
        out.append(
            TokenLogprob(
                token=(chosen.decoded_token or "") if chosen else "",
                token_id=token_id,
                logprob=float(chosen.logprob) if chosen else float("-inf"),
                top=top,
            )
        )
    return out


class VllmEngine:
    """``Engine`` over vLLM's ``AsyncLLM``; prefix caching on."""

    def __init__(self, llm: Any, registry: CollectorRegistry | None = None) -> None:
        self._llm = llm
        self._registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._tokenizer = llm.get_tokenizer()
        self._max_model_len = int(llm.model_config.max_model_len)
        self._prompt = _prompt_builder()
        parallel = getattr(getattr(llm, "vllm_config", None), "parallel_config", None)
        self._dp_size = int(getattr(parallel, "data_parallel_size", 1) or 1)
        #: Set when a request saw the engine die, before vLLM's own monitor may have flagged it.
        self._dead = False

    @classmethod
    async def create(
        cls, model: str, served_name: str, options: EngineSettings, *, agent_traffic: bool = False
    ) -> VllmEngine:
        """Start the engine. The slow start runs in a thread so the server keeps answering.
        ``agent_traffic``: the server's default search mode is an agent mode (engine_args)."""
        from vllm.v1.engine.async_llm import AsyncLLM

        args = engine_args(model, served_name, options, agent_traffic=agent_traffic)
        speculating = getattr(args, "speculative_config", None)
        logger.info("speculative decoding: %s", speculating or "off")
        preload_intel_openmp(options.intel_openmp, speculating=bool(speculating), on_gpu=cuda_available())
        # vLLM's own Prometheus stat logger, recording into this engine's registry (vllm_metrics.py).
        registry = CollectorRegistry(auto_describe=True)
        llm = await asyncio.to_thread(
            AsyncLLM.from_engine_args, args, stat_loggers=[stat_logger_class(registry)]
        )
        logger.info("vLLM engine ready: %s (max_model_len=%d)", model, llm.model_config.max_model_len)
        return cls(llm, registry)

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """vLLM's ``vllm:*`` metrics of this engine, as ``vllm serve`` exports them."""
        return self._registry

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    def render_chat(self, messages: list[ChatMessageDict]) -> str:
        return str(self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens))

    def decode(self, token_ids: list[int]) -> str:
        return str(self._tokenizer.decode(token_ids))

    async def generate(
        self,
        prompt_token_ids: list[int],
        options: SamplingOptions,
        request_id: str,
        *,
        session_key: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        from vllm import SamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError as VllmEngineDeadError

        try:
            params = SamplingParams(
                n=1,
                max_tokens=options.max_tokens,
                temperature=options.temperature,
                top_p=options.top_p,
                seed=options.seed,
                stop=list(options.stop) or None,
                include_stop_str_in_output=options.include_stop_str_in_output,
                logprobs=options.logprobs,
                presence_penalty=options.presence_penalty,
                frequency_penalty=options.frequency_penalty,
                structured_outputs=_structured_outputs(options.structured),
                prompt_logprobs=options.prompt_logprobs,
                repetition_detection=_repetition_detection(options.repetition),
                min_tokens=options.min_tokens,
                ignore_eos=options.ignore_eos,
                output_kind=RequestOutputKind.DELTA,
            )
        except (VLLMClientError, ValueError) as exc:  # options this vLLM refuses
            raise EngineInputError(str(exc)) from exc
        prompt = self._prompt(prompt_token_ids)
        k = options.logprobs or 0
        finished = False
        # With data parallelism, a session's requests go to one rank (its prefix cache); else vLLM balances.
        rank = data_parallel_rank(session_key, self._dp_size)
        pinned = {} if rank is None else {"data_parallel_rank": rank}
        try:
            async for out in self._llm.generate(prompt, params, request_id, **pinned):
                completion = out.outputs[0]
                token_ids = list(completion.token_ids)
                finished = out.finished
                yield GenerationChunk(
                    text=completion.text,
                    token_ids=token_ids,
                    prompt_tokens=len(prompt_token_ids),
                    cached_tokens=int(out.num_cached_tokens or 0),
                    logprobs=(
                        _convert_logprobs(completion.logprobs, token_ids, k)
                        if options.logprobs is not None
                        else None
                    ),
                    finish_reason=completion.finish_reason if out.finished else None,
                    stop_reason=completion.stop_reason,
                    prompt_logprobs=(
                        _convert_prompt_logprobs(
                            out.prompt_logprobs, prompt_token_ids, options.prompt_logprobs
                        )
                        if options.prompt_logprobs is not None and out.prompt_logprobs
                        else None
                    ),
                )
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except VLLMClientError as exc:  # refused at admission: the request's fault
            raise EngineInputError(str(exc)) from exc
        except VllmEngineDeadError as exc:
            self._dead = True
            raise EngineDeadError("the engine process has died") from exc
        except Exception as exc:
            if self._llm.errored:  # whatever surfaced first, the engine is gone
                self._dead = True
                raise EngineDeadError(f"the engine process has died ({type(exc).__name__})") from exc
            raise EngineError(f"generation failed: {type(exc).__name__}") from exc
        finally:
            if not finished and self.is_healthy():
                await self.abort(request_id)

    async def abort(self, request_id: str) -> None:
        try:
            await self._llm.abort(request_id)
        except Exception:  # aborting an already finished request is not an error
            logger.debug("abort of %s ignored", request_id, exc_info=True)

    def num_unfinished_requests(self) -> int:
        return int(self._llm.get_num_unfinished_requests())

    def is_healthy(self) -> bool:
        return not (self._dead or self._llm.errored)

    async def shutdown(self) -> None:
        await asyncio.to_thread(self._llm.shutdown)
