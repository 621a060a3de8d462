"""vLLM's own Prometheus metrics (``vllm:*``), recorded by vLLM's own stat logger into a registry of
this engine's, not into prometheus_client's process-wide default registry.

vLLM's ``PrometheusStatLogger`` builds every metric through class attributes (``_gauge_cls``,
``_counter_cls``, ``_histogram_cls``, and the same on its spec-decoding, KV-connector, EC-connector
and perf-metrics helpers); vLLM's Ray wrappers override exactly these to send the metrics elsewhere.
Here they are bound to one ``CollectorRegistry``, so the names, types, labels and values are the ones
``vllm serve`` exports, recorded from the engine's own scheduler and iteration stats, while two apps
(or two engines) in one process never share or clobber each other's metrics.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def _bound(base: type, registry: CollectorRegistry, name: str) -> type:
    """A subclass of one of vLLM's metric holders whose metrics go into ``registry``."""
    attrs: dict[str, Any] = {}
    for attr, metric in (("_gauge_cls", Gauge), ("_counter_cls", Counter), ("_histogram_cls", Histogram)):
        if hasattr(base, attr):
            attrs[attr] = staticmethod(functools.partial(metric, registry=registry))
    return type(name, (base,), attrs)


def stat_logger_class(registry: CollectorRegistry) -> type:
    """vLLM's ``PrometheusStatLogger``, recording into ``registry``. Pass it to
    ``AsyncLLM.from_engine_args(stat_loggers=[...])``: vLLM then uses it instead of its default
    Prometheus logger (and, with ``disable_log_stats``, starts no periodic log lines)."""
    from vllm.v1.metrics.loggers import PrometheusStatLogger

    helpers = {
        attr: _bound(
            getattr(PrometheusStatLogger, attr), registry, getattr(PrometheusStatLogger, attr).__name__
        )
        for attr in ("_spec_decoding_cls", "_kv_connector_cls", "_ec_connector_cls", "_perf_metrics_cls")
        if hasattr(PrometheusStatLogger, attr)
    }
    logger_cls = _bound(PrometheusStatLogger, registry, "RegistryPrometheusStatLogger")
    for attr, helper in helpers.items():
        setattr(logger_cls, attr, helper)
    return logger_cls
