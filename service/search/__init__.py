"""Search backends: who writes the <information> block when the model searches for real."""

from service.search.base import Doc, SearchBackend, SearchError

__all__ = ["Doc", "SearchBackend", "SearchError"]
