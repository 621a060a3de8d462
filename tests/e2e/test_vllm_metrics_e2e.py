"""``/metrics`` carries vLLM's own ``vllm:*`` metrics, named and typed as ``vllm serve`` exports them.

The reference is vLLM's own OpenAI server, started here on the same (merged, embedded) model with the
same engine options, after one request each. Autoscalers and routers (KEDA, HPA adapters, vllm-router,
production-stack) read these names.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.overhead import vllm_server
from service.engine.model_files import resolve_model
from service.settings import Settings
from tests.e2e.conftest import MODEL
from tests.e2e.launcher import RunningServer

pytestmark = pytest.mark.e2e  # loads the real model (tests/conftest.py: how e2e tests are marked)

#: What the issue asks for by name (prometheus_client names counters without ``_total``).
REQUIRED = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:cache_config_info": "gauge",
}


def vllm_families(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """``vllm:*`` family -> (type, label names of its samples)."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("vllm:"):
            labels = frozenset(name for sample in family.samples for name in sample.labels if name != "le")
            out[family.name] = (family.type, labels)
    return out


def one_request(base_url: str, api_key: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=120)
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=4, temperature=0
    )


@pytest.fixture(scope="module")
def vllm_reference(tmp_path_factory: pytest.TempPathFactory, server: RunningServer) -> Iterator[str]:
    """vLLM's own OpenAI server on the same merged model (stat logging on, as by default)."""
    model_dir = resolve_model(None, Settings().cache_dir)  # already prepared by the `server` fixture
    log_dir = tmp_path_factory.mktemp("vllm-reference")
    with vllm_server(Path(model_dir), Path(log_dir), log_stats=True, max_num_seqs=8) as reference:
        one_request(reference.url, "none")
        yield httpx.get(reference.url + "/metrics", timeout=10).text


def test_vllm_metrics_match_vllms_own_server(server: RunningServer, vllm_reference: str) -> None:
    one_request(server.base_url, server.api_key)
    ours_text = httpx.get(server.base_url + "/metrics", timeout=10).text
    ours, theirs = vllm_families(ours_text), vllm_families(vllm_reference)
    print(f"vllm:* families: vLLM's own server {len(theirs)}, this service {len(ours)}")

    for name, kind in REQUIRED.items():
        assert theirs.get(name, ("missing",))[0] == kind, f"vLLM's own server: {name} {theirs.get(name)}"
        assert ours.get(name, ("missing",))[0] == kind, f"ours: {name} {ours.get(name)}"
    # every vllm:* family vLLM's server exports, we export too, with the same type and labels
    assert {n: t for n, (t, _) in ours.items()} == {n: t for n, (t, _) in theirs.items()}
    assert ours == theirs
    assert ours["vllm:num_requests_waiting"][1] == {"model_name", "engine"}
    # the service's own metrics stay beside them, in the same exposition
    assert "ssrl_requests_total" in ours_text


def test_vllm_metrics_count_real_work(server: RunningServer) -> None:
    """Values come from the engine's own stats: a repeated prompt is a prefix-cache hit."""

    def value(text: str, name: str) -> float:
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    before = httpx.get(server.base_url + "/metrics", timeout=10).text
    prompt = "Repeat after me: " + "the quick brown fox jumps over the lazy dog. " * 20
    client = openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120
    )
    for _ in range(2):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=2, temperature=0
        )
    after = httpx.get(server.base_url + "/metrics", timeout=10).text
    assert (
        value(after, "vllm:prefix_cache_queries_total") - value(before, "vllm:prefix_cache_queries_total")
        > 200
    )
    assert value(after, "vllm:prefix_cache_hits_total") - value(before, "vllm:prefix_cache_hits_total") >= 128
    assert value(after, "vllm:num_requests_running") == 0
    assert value(after, "vllm:request_success_total") - value(before, "vllm:request_success_total") == 2
    info = [
        sample.labels
        for family in text_string_to_metric_families(after)
        for sample in family.samples
        if sample.name == "vllm:cache_config_info"
    ]
    assert info and info[0]["enable_prefix_caching"] == "True" and int(info[0]["block_size"]) > 0
