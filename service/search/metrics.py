"""Prometheus metrics of the search backends, registered in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class SearchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.calls = Counter(
            "ssrl_search_calls",
            "Calls made to a search backend (retries included).",
            ["backend"],
            registry=registry,
        )
        self.errors = Counter(
            "ssrl_search_errors", "Failed backend calls by kind.", ["backend", "kind"], registry=registry
        )
        self.latency = Histogram(
            "ssrl_search_latency_seconds",
            "Latency of backend calls.",
            ["backend"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.cache_hits = Counter(
            "ssrl_search_cache_hits",
            "Searches answered from the result cache.",
            ["backend"],
            registry=registry,
        )
        self.coalesced = Counter(
            "ssrl_search_coalesced",
            "Searches that joined an identical one already in flight.",
            ["backend"],
            registry=registry,
        )
