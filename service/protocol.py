"""The wire vocabulary: OpenAI chat-completions models (requests, responses, stream chunks, errors)
and the service's own words on that wire: search modes, backend names and the search trace."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: The modes that run the search loop: the model writes the <information> blocks (self), a search
#: backend does (real), the entropy-guided hybrid decides per search (entropy), or the caller runs
#: each search as an OpenAI tool call and sends the results back (client).
AgentMode = Literal["self", "real", "entropy", "client"]
#: Who writes the <information> blocks; ``off`` is plain chat with no agent prompt and no loop.
SearchMode = Literal[AgentMode, "off"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
AGENT_MODES: tuple[AgentMode, ...] = get_args(AgentMode)

#: The search backends, by the names requests and settings use.
BackendName = Literal["local", "retriever", "serper", "tavily", "brave", "searxng"]
BACKEND_NAMES: tuple[BackendName, ...] = get_args(BackendName)


class _Lenient(BaseModel):
    """Unknown fields are ignored, as OpenAI's own servers do; known fields are typed strictly."""

    model_config = ConfigDict(extra="ignore", strict=True)


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class FunctionCall(_Lenient):
    name: str = Field(max_length=256)
    arguments: str


class ToolCall(_Lenient):
    """A tool call as OpenAI writes it (and clients echo it back in the assistant message)."""

    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionSpec(_Lenient):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None


#: The one function this model can call: the SSRL search action, which the ``client`` search mode
#: hands to the caller as a tool call.
SEARCH_TOOL = "search"


class ToolSpec(_Lenient):
    type: Literal["function"]
    function: FunctionSpec


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=256)
    #: An assistant message's tool calls (search_mode client: the searches the caller ran).
    tool_calls: list[ToolCall] | None = None
    #: A tool message's answer to one of those calls.
    tool_call_id: str | None = Field(default=None, max_length=256)
    #: An assistant message's reasoning (the trajectory text, as this service returns it), under
    #: vLLM's current name (``reasoning``) or its former one (``reasoning_content``); accepted either
    #: way, not rendered into the prompt except as the client mode's echoed trajectory.
    reasoning: str | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Lenient):
    include_usage: bool = False


class JsonSchemaFormat(_Lenient):
    """``response_format.json_schema``: the schema is on the wire as ``schema``."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class FunctionName(_Lenient):
    name: str


class NamedToolChoice(_Lenient):
    type: Literal["function"]
    function: FunctionName


class SearchOptions(BaseModel):
    """Per-request overrides of the search loop (``extra_body={"search": {...}}``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    backend: str | None = Field(default=None, min_length=1, max_length=64)
    top_k: int | None = Field(default=None, ge=1, le=50)
    max_turns: int | None = Field(default=None, ge=0, le=32)
    threshold: float | None = Field(default=None, ge=0.0, le=20.0)
    rule: Literal["increase", "threshold"] | None = None


#: ``web_search_options.search_context_size`` (and the Responses ``web_search`` tool's) as the number of
#: results each real search injects; ``search.top_k`` in the body wins when both are given.
SEARCH_CONTEXT_TOP_K: dict[str, int] = {"low": 1, "medium": 3, "high": 5}
SearchContextSize = Literal["low", "medium", "high"]


class ApproximateLocation(_Lenient):
    city: str | None = None
    country: str | None = None
    region: str | None = None
    timezone: str | None = None


class UserLocation(_Lenient):
    """Accepted as OpenAI sends it and not used: the search backends take no location."""

    type: Literal["approximate"] = "approximate"
    approximate: ApproximateLocation | None = None


class WebSearchOptions(_Lenient):
    """OpenAI's chat ``web_search_options``: honoured in the agent modes (``search_context_size`` sets
    how many results each search injects); a 400 in plain chat, which searches nothing."""

    search_context_size: SearchContextSize | None = None
    user_location: UserLocation | None = None

    def top_k(self) -> int | None:
        size = self.search_context_size
        return None if size is None else SEARCH_CONTEXT_TOP_K[size]


class RepetitionDetection(BaseModel):
    """vLLM's request field ``repetition_detection``: end the text once its last tokens are one
    pattern of ``min_pattern_size``..``max_pattern_size`` tokens repeated ``min_count`` times in a
    row (``max_pattern_size`` 0: no repetition stop)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_pattern_size: int = Field(default=0, ge=0, le=1024)
    min_pattern_size: int = Field(default=0, ge=0, le=1024)
    min_count: int = Field(default=0, ge=0, le=1024)

    @model_validator(mode="after")
    def _consistent(self) -> RepetitionDetection:
        if self.min_pattern_size > self.max_pattern_size and self.max_pattern_size > 0:
            raise ValueError("min_pattern_size must be at most max_pattern_size")
        if self.max_pattern_size > 0 and self.min_count < 2:
            raise ValueError("min_count must be at least 2 (max_pattern_size 0 turns the stop off)")
        return self


def _default_if_null(cls: type[BaseModel], value: object, info: ValidationInfo) -> object:
    if value is None and info.field_name is not None:
        return cls.model_fields[info.field_name].default
    return value


def _checked_stops(value: str | list[str] | None) -> str | list[str] | None:
    stops = [value] if isinstance(value, str) else (value or [])
    if len(stops) > 16:
        raise ValueError("at most 16 stop sequences")
    if any(not s or len(s) > 512 for s in stops):
        raise ValueError("each stop sequence must have 1 to 512 characters")
    return value


def _stop_tuple(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


class ChatCompletionRequest(_Lenient):
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    user: str | None = Field(default=None, max_length=256)
    search_mode: SearchMode | None = None
    search: SearchOptions | None = None
    web_search_options: WebSearchOptions | None = None
    response_format: ResponseFormat | None = None
    #: A function named ``search`` makes an agent request run in ``client`` mode; any other is a 400.
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    #: vLLM's; unset = the server's ``--repetition.*`` settings.
    repetition_detection: RepetitionDetection | None = None
    #: vLLM's (``vllm bench serve --ignore-eos`` sends it): plain chat only, a 400 in the agent modes.
    min_tokens: int = Field(default=0, ge=0)
    ignore_eos: bool = False

    @field_validator(
        "n",
        "stream",
        "logprobs",
        "presence_penalty",
        "frequency_penalty",
        "min_tokens",
        "ignore_eos",
        mode="before",
    )
    @classmethod
    def _null_is_default(cls, value: object, info: ValidationInfo) -> object:
        """OpenAI's schema makes these nullable, null meaning the default; clients that send every
        field (``"n": null``) must not get a 400."""
        return _default_if_null(cls, value, info)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        return _checked_stops(value)

    def stop_list(self) -> tuple[str, ...]:
        return _stop_tuple(self.stop)

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def max_tokens_param(self) -> str:
        """The field that set ``requested_max_tokens()``, for errors to name."""
        return "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"


class CompletionRequest(_Lenient):
    """``POST /v1/completions``: plain text completion of one prompt or a batch of prompts (strings
    or token ids), as vLLM's server takes it."""

    model: str = Field(min_length=1, max_length=256)
    prompt: str | list[str] | list[Annotated[int, Field(ge=0)]] | list[list[Annotated[int, Field(ge=0)]]]
    #: OpenAI's and vLLM's default; 0 with ``echo`` returns the prompt (and its logprobs) only.
    max_tokens: int = Field(default=16, ge=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    #: The chosen token's logprob plus this many alternatives, per token.
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    user: str | None = Field(default=None, max_length=256)
    response_format: ResponseFormat | None = None
    search_mode: SearchMode | None = None
    #: vLLM's; unset = none, as vLLM's /v1/completions.
    repetition_detection: RepetitionDetection | None = None
    #: vLLM's: neither the end-of-sequence token nor a stop string ends a text before ``min_tokens``;
    #: ``ignore_eos``: the end-of-sequence token never does.
    min_tokens: int = Field(default=0, ge=0)
    ignore_eos: bool = False

    @field_validator(
        "max_tokens",
        "n",
        "stream",
        "echo",
        "presence_penalty",
        "frequency_penalty",
        "min_tokens",
        "ignore_eos",
        mode="before",
    )
    @classmethod
    def _null_is_default(cls, value: object, info: ValidationInfo) -> object:
        return _default_if_null(cls, value, info)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        return _checked_stops(value)

    def stop_list(self) -> tuple[str, ...]:
        return _stop_tuple(self.stop)

    def prompts(self) -> list[str | list[int]]:
        """The prompts of the batch: strings or token-id lists."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if prompt and all(isinstance(p, int) for p in prompt):
            return [list(prompt)]  # type: ignore[arg-type]
        return list(prompt)  # type: ignore[arg-type]


# -- the search trace (agent modes) --------------------------------------------------------------
StepSource = Literal["self", "real", "fallback", "client"]
EndReason = Literal[
    "answer", "token_budget", "malformed_action", "no_answer", "context_full", "tool_call", "repetition"
]


class DocOut(BaseModel):
    title: str
    text: str
    url: str | None = None
    score: float | None = None


class TextSpan(BaseModel):
    """Where a block lies in the response's reasoning text (the trajectory: ``reasoning`` /
    ``reasoning_content``, streamed or whole): ``text[start:end]`` is the block, tags included.
    Offsets count Unicode code points (Python string indices; a JavaScript page converts them to
    UTF-16 indices for a text with characters beyond the BMP)."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)


class SearchStep(BaseModel):
    """One search action of the trajectory and who answered it, and where its blocks lie in the
    reasoning text.

    A streamed step (``search_step`` on a chunk) arrives when the search is decided, before the text
    that follows it: a ``real`` step already carries the span of the results it is about to inject;
    a ``self`` or ``fallback`` step's ``<information>`` is written by the model next, right after its
    ``</search>`` (white space aside), so its ``information_span`` is null on the streamed step and set
    in the trace once written. A ``client`` step has no ``<information>`` in this response (the
    caller runs the search), and the searches of earlier requests (client mode) have no spans: their
    text is not part of this response.
    """

    index: int
    query: str
    source: StepSource = Field(
        description="self: the model wrote the <information>; real: a backend did; "
        "fallback: the backend failed and the model wrote it; client: the caller ran it (a tool call)"
    )
    backend: str | None = None
    results: list[DocOut] = Field(default_factory=list)
    #: The <information> text the model wrote itself (self and fallback steps).
    self_information: str | None = None
    latency_ms: float | None = None
    #: The results came from the service's search cache, not the backend (``latency_ms`` is the lookup's).
    cache_hit: bool = False
    uncertainty: float | None = None
    #: Prompt tokens served from the prefix cache in the generation turn that wrote the query.
    cached_tokens: int = 0
    error: str | None = None
    #: The ``<search> ... </search>`` block in the reasoning text.
    search_span: TextSpan | None = None
    #: The ``<information> ... </information>`` block in the reasoning text: injected results (real),
    #: or the block the model wrote (self, fallback); null while not (yet) written.
    information_span: TextSpan | None = None


class GenerationTurn(BaseModel):
    """One call to the engine: the prompt it re-submitted, and how much of it was cached."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    stopped_by: str


class SearchTrace(BaseModel):
    """What the search loop did: its steps, its generation turns, and why it ended."""

    mode: str
    backend: str | None = None
    steps: list[SearchStep] = Field(default_factory=list)
    turns: list[GenerationTurn] = Field(default_factory=list)
    corrections: int = 0
    end_reason: EndReason | None = None
    detail: str | None = None


# -- responses --------------------------------------------------------------------------------
def _unset(value: object) -> bool:
    return value is None


class TopLogprobOut(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(TopLogprobOut):
    top_logprobs: list[TopLogprobOut]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ToolCallDelta(BaseModel):
    """A streamed piece of a tool call: the first carries id, type and name; the rest argument text."""

    index: int
    id: str | None = Field(default=None, exclude_if=_unset)
    type: Literal["function"] | None = Field(default=None, exclude_if=_unset)
    function: dict[str, str]


class UrlCitation(BaseModel):
    """A source of the answer: ``content[start_index:end_index]`` (code points) came from ``url``."""

    url: str
    title: str
    start_index: int = Field(ge=0)
    end_index: int = Field(ge=0)


class UrlCitationAnnotation(BaseModel):
    """OpenAI's chat-completions annotation of a web-search answer."""

    type: Literal["url_citation"] = "url_citation"
    url_citation: UrlCitation


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    #: The whole search trajectory (agent modes), the convention of vLLM's reasoning parsers:
    #: ``reasoning`` is vLLM's current name, ``reasoning_content`` its former one (same text).
    reasoning: str | None = None
    reasoning_content: str | None = None
    #: search_mode client: the search the caller should run. On the wire only when there is one.
    tool_calls: list[ToolCallOut] | None = Field(default=None, exclude_if=_unset)
    #: Agent modes: the documents the answer came from (docs/sources-and-responses.md); plain chat
    #: has none and leaves the key out.
    annotations: list[UrlCitationAnnotation] | None = Field(default=None, exclude_if=_unset)

    @classmethod
    def of(cls, content: str | None, reasoning: str | None = None) -> AssistantMessage:
        return cls(content=content, reasoning=reasoning, reasoning_content=reasoning)


class Choice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None
    #: vLLM's (plain chat): the stop string or token id that ended the text, or
    #: ``repetition_detected`` for the repetition stop; on the wire only when there is one.
    stop_reason: int | str | None = Field(default=None, exclude_if=_unset)
    #: Not OpenAI's key: what the search loop did for this choice (agent modes; each of ``n``
    #: choices has its own trajectory). On the wire only in agent modes.
    search_trace: SearchTrace | None = Field(default=None, exclude_if=_unset)


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
        )


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    #: What the search loop did (agent modes): choice 0's trace (each choice carries its own, the
    #: same object for choice 0); null in plain chat.
    search_trace: SearchTrace | None = None


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    #: Not OpenAI's keys, so they are on the wire only when there is some (agent modes): vLLM's
    #: current name and its former one, with the same text.
    reasoning: str | None = Field(default=None, exclude_if=_unset)
    reasoning_content: str | None = Field(default=None, exclude_if=_unset)
    tool_calls: list[ToolCallDelta] | None = Field(default=None, exclude_if=_unset)
    #: Agent modes: the answer's sources, all at once on the chunk that carries the answer.
    annotations: list[UrlCitationAnnotation] | None = Field(default=None, exclude_if=_unset)

    @classmethod
    def of_reasoning(cls, text: str) -> DeltaMessage:
        return cls(reasoning=text, reasoning_content=text)


class ChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = Field(default=None, exclude_if=_unset)


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    # Not OpenAI's keys: on the wire only on the chunks that carry them.
    #: A search step as it happens (agent modes).
    search_step: SearchStep | None = Field(default=None, exclude_if=_unset)
    #: The whole trace, on the chunk that finishes the choice (agent modes).
    search_trace: SearchTrace | None = Field(default=None, exclude_if=_unset)


class CompletionLogprobs(BaseModel):
    """Logprobs of a text completion, in the legacy completions shape (token-aligned lists)."""

    text_offset: list[int]
    token_logprobs: list[float | None]
    tokens: list[str]
    top_logprobs: list[dict[str, float] | None]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None
    #: vLLM's: the stop string (or token id) that ended the text, null for end of text or length.
    stop_reason: int | str | None = None


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ssrl-service"
    max_model_len: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
