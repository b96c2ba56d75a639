"""The Kubernetes manifests: they build with kustomize, validate offline, and their timeouts agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def build(overlay: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("needs kubectl (its kustomize builds the manifests)")
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str, name: str = "xmlc-api") -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("overlay", ["keda", "hpa"])
def test_manifests_validate_against_the_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate as kv  # the dev extra: never skipped where the suite runs

    docs = build(overlay)
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # no schema there: test_keda_scales_the_deployment_on_its_in_flight_gauge
        kv.validate(doc, "1.32.0", strict=True)
        checked += 1
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "Ingress", "ConfigMap"} <= kinds
    assert ("ScaledObject" if overlay == "keda" else "HorizontalPodAutoscaler") in kinds
    assert checked >= 8


def test_keda_scales_the_deployment_on_its_in_flight_gauge() -> None:
    docs = build("keda")
    scaled = by_kind(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", by_kind(docs, "Deployment")["metadata"]["name"])
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert "xmlc_inflight_requests" in trigger["metadata"]["query"]
    assert float(trigger["metadata"]["threshold"]) > 0
    assert trigger["metadata"]["serverAddress"].startswith("http")
    pdb = by_kind(docs, "PodDisruptionBudget")["spec"]
    assert spec["minReplicaCount"] >= pdb["maxUnavailable"] + 1  # a disruption never empties the service
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 60  # no flapping after a spike


def test_timeouts_agree_from_gateway_to_pod() -> None:
    docs = build("keda")
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    (api,) = pod["containers"]
    env = {e["name"]: e["value"] for e in api["env"]}
    pre_stop = float(api["lifecycle"]["preStop"]["exec"]["command"][-1])
    grace = float(env["XMLC_SHUTDOWN_GRACE_S"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + grace  # the drain ends before a kill
    assert api["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"]
    assert any(m["mountPath"] == "/models" and m["readOnly"] for m in api["volumeMounts"])
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    ingress = by_kind(docs, "Ingress")["metadata"]["annotations"]
    assert float(ingress["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > float(
        env["XMLC_REQUEST_TIMEOUT_S"]
    )
    assert "timeout" not in ingress["nginx.ingress.kubernetes.io/proxy-next-upstream"]  # no retry on timeouts
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["api"]
    stop_grace = float(compose["stop_grace_period"].rstrip("s"))
    assert stop_grace > float(compose["environment"]["XMLC_SHUTDOWN_GRACE_S"])
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_next_upstream error timeout http_503 non_idempotent;" in nginx
    # ... where `timeout` can only be a connect timeout: reads and sends time out after the retry window.
    seconds = {
        name: _duration(re.search(rf"\b{name} (\w+);", nginx).group(1))  # type: ignore[union-attr]
        for name in (
            "proxy_connect_timeout",
            "proxy_read_timeout",
            "proxy_send_timeout",
            "proxy_next_upstream_timeout",
        )
    }
    window = seconds["proxy_next_upstream_timeout"]
    assert seconds["proxy_connect_timeout"] < window
    assert min(seconds["proxy_read_timeout"], seconds["proxy_send_timeout"]) > window
    assert 'proxy_set_header X-Request-Start "t=$msec";' in nginx


def _duration(text: str) -> float:
    """An nginx time ("300ms", "5s", "1m") in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m)?", text)
    assert m, text
    return int(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
