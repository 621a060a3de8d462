"""A search backend for tests: canned documents, a call log, and failures on demand."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.search.base import Doc, SearchError, SearchFailure


@dataclass
class FakeBackend:
    docs: list[Doc] = field(
        default_factory=lambda: [
            Doc(
                "Paris",
                "Paris is the capital and largest city of France.",
                "https://en.wikipedia.org/wiki/Paris",
                9.1,
            ),
            Doc("France", "France is a country in Western Europe.", None, 5.0),
            Doc("Lyon", "Lyon is a city in France.", None, 2.0),
            Doc("Nice", "Nice is on the Riviera.", None, 1.0),
        ]
    )
    name: str = "fake"
    fail: SearchFailure | None = None
    queries: list[tuple[str, int]] = field(default_factory=list)
    closed: bool = False

    async def search(self, query: str, top_k: int) -> list[Doc]:
        self.queries.append((query, top_k))
        if self.fail is not None:
            raise SearchError(self.name, self.fail, "injected failure")
        return self.docs[:top_k]

    async def aclose(self) -> None:
        self.closed = True
