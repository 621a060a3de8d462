from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from service.search.local import LocalIndex
from service.search.metrics import SearchMetrics


class Recorder:
    """A MockTransport handler that records requests and answers from a list (the last one repeats).
    An exception in the list is raised instead, as the transport would."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses[min(len(self.requests), len(self.responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


@pytest.fixture()
def metrics() -> SearchMetrics:
    return SearchMetrics(CollectorRegistry())


def sample(metrics: SearchMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def write_jsonl(path: Path, rows: list[object]) -> Path:
    """One line per row; a string row is written as it is (to make broken lines)."""
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="session")
def wiki_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("indexes")


@pytest.fixture(scope="session")
def wiki_index(wiki_index_dir: Path) -> LocalIndex:
    """The embedded corpus, indexed once per session into a temporary cache."""
    return LocalIndex.load(None, wiki_index_dir)
