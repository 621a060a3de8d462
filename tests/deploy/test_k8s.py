"""deploy/k8s: every manifest validates against the Kubernetes API schemas, offline.

The validator is ``kubernetes-validate`` (PyPI; it bundles the OpenAPI-derived JSON schemas of each
Kubernetes release, so nothing is fetched), in strict mode: an unknown field is an error. The rest
checks that the manifests agree with the service: real settings, probes on /health, a grace period
that covers the shutdown timeout, the router's selector, the autoscaler's metric.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.settings import Settings
from tests.deploy.test_deploy import check_variable

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
#: The Kubernetes release the manifests are checked against (preStop `sleep` needs 1.30 or later).
VERSION = "1.33.0"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def kustomization() -> dict[str, Any]:
    return documents("kustomization.yaml")[0]


def resources() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in documents(name)]


def find(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in resources() if d["kind"] == kind and d["metadata"]["name"] == name)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


@pytest.mark.parametrize("name", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"))
def test_every_manifest_validates_against_the_kubernetes_schemas(name: str) -> None:
    docs = documents(name)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_validator_rejects_what_kubernetes_would() -> None:
    deployment = find("Deployment", "ssrl")
    typo = copy.deepcopy(deployment)
    container(typo)["readinessProbe"]["httpGet"]["paht"] = "/health"
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    for bad in (typo, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "prometheus-adapter-rules.yaml"}
    assert listed == on_disk
    kinds = {d["kind"] for d in resources()}
    assert {"Deployment", "Service", "Secret", "HorizontalPodAutoscaler", "ConfigMap"} <= kinds


def test_service_pods_gpu_probes_and_graceful_shutdown() -> None:
    deployment = find("Deployment", "ssrl")
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    env = {e["name"]: e for e in main["env"]}
    for name in env:
        assert check_variable(name) is None, name
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 1
    port = next(p["containerPort"] for p in main["ports"] if p["name"] == "http")
    assert int(env["SSRL_PORT"]["value"]) == port and env["SSRL_HOST"]["value"] == "0.0.0.0"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    shutdown = float(env["SSRL_SHUTDOWN_TIMEOUT"]["value"])
    assert shutdown == Settings().shutdown_timeout
    pause = main["lifecycle"]["preStop"]["sleep"]["seconds"]
    # the pod is not killed before the pause, the drain of in-flight requests and the engine's shutdown
    assert pod["terminationGracePeriodSeconds"] >= pause + shutdown + 5
    # keys come from the Secret, and every key referenced exists there
    secret = find("Secret", "ssrl-keys")["stringData"]
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for d in resources()
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
        if "valueFrom" in e
    ]
    assert refs and all(r["name"] == "ssrl-keys" and r["key"] in secret for r in refs)
    assert env["SSRL_API_KEYS"]["valueFrom"]["secretKeyRef"]["key"] == "SSRL_API_KEYS"


def test_router_discovers_the_service_pods_and_keys_on_the_session() -> None:
    router = find("Deployment", "ssrl-router")
    args = container(router)["args"]
    # not /health: vllm-router answers 503 there while any one replica is down (seen by compose-e2e.sh)
    assert container(router)["livenessProbe"]["httpGet"]["path"] == "/liveness"
    assert container(router)["readinessProbe"]["httpGet"]["path"] == "/readiness"
    assert "--policy=consistent_hash" in args and "--service-discovery" in args
    selector = args[args.index("--selector") + 1]
    key, value = selector.split("=")
    assert find("Deployment", "ssrl")["spec"]["template"]["metadata"]["labels"][key] == value
    namespace = next(a.split("=", 1)[1] for a in args if a.startswith("--service-discovery-namespace="))
    assert namespace == kustomization()["namespace"]
    # the router's service account may watch pods
    role = find("Role", "ssrl-router")
    assert {"get", "list", "watch"} <= set(role["rules"][0]["verbs"]) and role["rules"][0]["resources"] == [
        "pods"
    ]


def test_autoscaler_scales_the_service_on_vllm_waiting_requests() -> None:
    hpa = find("HorizontalPodAutoscaler", "ssrl")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ssrl"}
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    rules = yaml.safe_load(documents("prometheus-adapter-rules.yaml")[0]["data"]["config.yaml"])["rules"]
    rule = next(r for r in rules if r["name"]["as"] == metric)
    # the adapter serves vLLM's own metric under the HPA's name
    assert re.fullmatch(rule["name"]["matches"], "vllm:num_requests_waiting")
    assert rule["seriesQuery"].startswith("vllm:num_requests_waiting{")
    annotations = find("Deployment", "ssrl")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"
