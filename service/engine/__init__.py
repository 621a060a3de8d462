"""Engines behind the service: the protocol, the vLLM implementation and a scripted test engine."""

from service.engine.base import (
    ChatMessageDict,
    Engine,
    EngineDeadError,
    EngineError,
    GenerationChunk,
    SamplingOptions,
    TokenLogprob,
)

__all__ = [
    "ChatMessageDict",
    "Engine",
    "EngineDeadError",
    "EngineError",
    "GenerationChunk",
    "SamplingOptions",
    "TokenLogprob",
]
