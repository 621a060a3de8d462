"""Python SDK of the SSRL inference service.

from ssrl_client import Client

with Client(base_url="http://localhost:8000", api_key="...") as client:
    result = client.ask("Who wrote Hamlet?", search_mode="real", backend="local", top_k=3)
    print(result.answer, [step.query for step in result.steps])
"""

from ssrl_client._base import SESSION_HEADER, session_key
from ssrl_client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    ServerError,
    SSRLError,
)
from ssrl_client._search import AsyncSearchFunction, SearchFunction, SearchResults
from ssrl_client._streaming import AsyncStream, Stream
from ssrl_client.client import AsyncClient, Client
from ssrl_client.types import (
    AnswerDelta,
    ChatResult,
    ChoiceResult,
    Doc,
    Done,
    GenerationTurn,
    ReasoningDelta,
    SearchStep,
    SearchStepEvent,
    SearchTrace,
    StreamEvent,
    TextSpan,
    Usage,
)

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AnswerDelta",
    "AsyncClient",
    "AsyncSearchFunction",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ChatResult",
    "ChoiceResult",
    "Client",
    "Doc",
    "Done",
    "GenerationTurn",
    "NotFoundError",
    "RateLimitError",
    "ReasoningDelta",
    "RequestTooLargeError",
    "SESSION_HEADER",
    "SSRLError",
    "SearchFunction",
    "SearchResults",
    "SearchStep",
    "SearchStepEvent",
    "SearchTrace",
    "ServerError",
    "Stream",
    "StreamEvent",
    "TextSpan",
    "Usage",
    "session_key",
]
