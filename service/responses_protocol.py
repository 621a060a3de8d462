"""The Responses API on the wire (``POST /v1/responses``): the request, the response object, its
output items and its stream events, in the shapes of the ``openai`` package's
``openai.types.responses`` (the tests validate every body and event against them).

The service's own additions, each documented in docs/sources-and-responses.md: ``search_mode`` and
``search`` in the request (as on /v1/chat/completions), ``search_source`` on each ``web_search_call``
item (who wrote that search's results: ``real`` a backend, ``self`` the model, ``fallback`` the model
after the backend failed), and the ``search_trace`` of the run on the response.
"""

from __future__ import annotations

import time
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from service.protocol import SearchContextSize, SearchMode, SearchOptions, SearchTrace, StepSource

#: The tool types that ask for web search (OpenAI's current name, its dated one, and the preview's).
WebSearchType = Literal[
    "web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"
]
WEB_SEARCH_TOOLS: tuple[WebSearchType, ...] = get_args(WebSearchType)


class _Lenient(BaseModel):
    """Unknown fields are ignored, as OpenAI's own servers do; known fields are typed strictly."""

    model_config = ConfigDict(extra="ignore", strict=True)


class InputText(_Lenient):
    """A text part of an input message (``input_text``; an echoed answer's ``output_text``); other
    parts are refused by name before this model sees them (``agent/responses_input.py``)."""

    type: Literal["input_text", "output_text", "text"]
    text: str


class InputMessage(_Lenient):
    """A message of ``input``: OpenAI's easy form (``{role, content}``) or its typed form."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class WebSearchToolSpec(_Lenient):
    """A ``web_search`` tool: real search. ``search_context_size`` sets the results per search as
    ``web_search_options`` does on chat; ``user_location`` and ``external_web_access`` are accepted
    and not used; a domain filter is refused (no backend takes one)."""

    type: WebSearchType
    search_context_size: SearchContextSize | None = None
    user_location: dict[str, Any] | None = None
    external_web_access: bool | None = None
    filters: dict[str, Any] | None = None

    def echo(self) -> dict[str, Any]:
        """The tool as the response lists it."""
        return self.model_dump(include={"type", "search_context_size"}, exclude_none=True)


class TextFormat(_Lenient):
    type: str


class TextConfig(_Lenient):
    format: TextFormat | None = None


class ResponsesRequest(_Lenient):
    """``POST /v1/responses``. ``input`` items and ``tools`` are read by ``agent/responses.py``,
    which names the offending item or tool in its 400s."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    #: The most searches of the trajectory (``max_turns``; ``search.max_turns`` wins).
    max_tool_calls: int | None = Field(default=None, ge=0, le=32)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    text: TextConfig | None = None
    user: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    search_mode: SearchMode | None = None
    search: SearchOptions | None = None

    @field_validator("stream", mode="before")
    @classmethod
    def _null_is_default(cls, value: object, info: ValidationInfo) -> object:
        return False if value is None else value


# -- the response ---------------------------------------------------------------------------------
ItemStatus = Literal["in_progress", "completed", "incomplete"]


class UrlCitationOut(BaseModel):
    """A source of the answer: ``text[start_index:end_index]`` (code points) came from ``url``."""

    type: Literal["url_citation"] = "url_citation"
    url: str
    title: str
    start_index: int
    end_index: int


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[UrlCitationOut] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class MessageItem(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: ItemStatus
    content: list[OutputText]


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class ReasoningItem(BaseModel):
    """The whole trajectory (think, search, information and answer blocks), as one reasoning text."""

    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[Any] = Field(default_factory=list)
    content: list[ReasoningText]
    status: ItemStatus


class SearchSource(BaseModel):
    type: Literal["url"] = "url"
    url: str


class SearchAction(BaseModel):
    type: Literal["search"] = "search"
    query: str
    #: The URLs of the results the search injected (none for results the model wrote itself).
    sources: list[SearchSource]


class WebSearchCallItem(BaseModel):
    id: str
    type: Literal["web_search_call"] = "web_search_call"
    status: Literal["in_progress", "searching", "completed", "failed"]
    action: SearchAction
    #: Not OpenAI's: who wrote this search's results (``real``: a backend; ``self``: the model;
    #: ``fallback``: the model, after the backend failed).
    search_source: StepSource | None = None


OutputItem = ReasoningItem | WebSearchCallItem | MessageItem


class InputTokensDetails(BaseModel):
    cached_tokens: int
    cache_write_tokens: int = 0


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    #: Every output token is the trajectory's (the answer is read out of it): reasoning_tokens is
    #: output_tokens.
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


ResponseStatus = Literal["in_progress", "completed", "incomplete", "failed"]
ResponseErrorCode = Literal["server_error", "rate_limit_exceeded"]


class ResponseErrorOut(BaseModel):
    code: ResponseErrorCode
    message: str


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int = Field(default_factory=lambda: int(time.time()))
    completed_at: int | None = None
    status: ResponseStatus
    error: ResponseErrorOut | None = None
    incomplete_details: IncompleteDetails | None = None
    model: str
    instructions: str | None = None
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = False
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    previous_response_id: None = None
    store: Literal[False] = False
    background: Literal[False] = False
    temperature: float | None = None
    top_p: float | None = None
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    #: Not OpenAI's: what the search loop did (the same trace as chat completions carry).
    search_trace: SearchTrace | None = None


# -- stream events (each with ``type`` and ``sequence_number``) ------------------------------------
class ResponseEvent(BaseModel):
    type: str
    sequence_number: int = 0


class LifecycleEvent(ResponseEvent):
    """``response.created``, ``.in_progress``, ``.completed``, ``.incomplete``, ``.failed``."""

    response: ResponseObject


class OutputItemEvent(ResponseEvent):
    """``response.output_item.added`` and ``.done``."""

    output_index: int
    item: OutputItem


class WebSearchEvent(ResponseEvent):
    """``response.web_search_call.in_progress``, ``.searching`` and ``.completed``."""

    output_index: int
    item_id: str


class ContentPartEvent(ResponseEvent):
    """``response.content_part.added`` and ``.done``."""

    output_index: int
    item_id: str
    content_index: int = 0
    part: OutputText | ReasoningText


class TextDeltaEvent(ResponseEvent):
    """``response.output_text.delta`` (with ``logprobs``) and ``response.reasoning_text.delta``."""

    output_index: int
    item_id: str
    content_index: int = 0
    delta: str
    logprobs: list[Any] | None = Field(default=None, exclude_if=lambda value: value is None)


class TextDoneEvent(ResponseEvent):
    """``response.output_text.done`` (with ``logprobs``) and ``response.reasoning_text.done``."""

    output_index: int
    item_id: str
    content_index: int = 0
    text: str
    logprobs: list[Any] | None = Field(default=None, exclude_if=lambda value: value is None)


class AnnotationAddedEvent(ResponseEvent):
    type: Literal["response.output_text.annotation.added"] = "response.output_text.annotation.added"
    output_index: int
    item_id: str
    content_index: int = 0
    annotation_index: int
    annotation: UrlCitationOut


class ErrorEvent(ResponseEvent):
    """A failure mid-stream, followed by ``response.failed``."""

    type: Literal["error"] = "error"
    code: str | None
    message: str
    param: str | None = None
