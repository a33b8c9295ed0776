"""Properties of the rendered manifests that a GPU model server needs to be right the first time."""

from __future__ import annotations

import pytest
import yaml

from deploy_helpers import OVERLAYS, ROOT, one
from r3hf_server.api.metrics import Metrics
from r3hf_server.settings import Settings

# Settings the manifests set ahead of the server: R3HF_DRAIN_TIMEOUT_S arrives with issue 6 (graceful drain).
# pydantic-settings ignores unknown R3HF_* variables, so a misspelt key would otherwise pass unnoticed.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.fixture(params=OVERLAYS)
def overlay(request, rendered):
    return request.param, rendered[request.param]


def pod_spec(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def server_container(docs):
    (container,) = pod_spec(docs)["containers"]
    return container


def settings_map(docs) -> dict[str, str]:
    ref = server_container(docs)["envFrom"][0]["configMapRef"]["name"]
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == ref]
    return config["data"]


def test_every_namespaced_object_lands_in_the_overlay_namespace(overlay):
    _, docs = overlay
    namespace = one(docs, "Namespace")["metadata"]["name"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace, doc["kind"]


def test_service_links_and_token_are_off(overlay):
    _, docs = overlay
    spec = pod_spec(docs)
    assert spec["enableServiceLinks"] is False  # else <SERVICE>_PORT=tcp://... can land on R3HF_PORT
    assert spec["automountServiceAccountToken"] is False


def test_grace_period_covers_prestop_sleep_plus_drain(overlay):
    _, docs = overlay
    command = server_container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s, drain_s = int(command[1]), int(settings_map(docs)["R3HF_DRAIN_TIMEOUT_S"])
    assert 10 <= pre_stop_s <= 30 and 30 <= drain_s <= 120
    assert pod_spec(docs)["terminationGracePeriodSeconds"] >= pre_stop_s + drain_s


def test_probes(overlay):
    _, docs = overlay
    container = server_container(docs)
    startup, ready, live = (container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
    assert startup["httpGet"]["path"] == "/health"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "start-up budget below a slow model load"
    assert ready["httpGet"]["path"] == "/ready" and ready["periodSeconds"] <= 10
    assert live["httpGet"]["path"] == "/health" and live["periodSeconds"] * live["failureThreshold"] >= 30
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in (startup, ready, live):
        assert probe["httpGet"]["port"] in port_names


def test_server_listens_where_the_probes_look(overlay):
    _, docs = overlay
    container = server_container(docs)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["R3HF_HOST"] == "0.0.0.0"
    assert int(env["R3HF_PORT"]) == {p["name"]: p["containerPort"] for p in container["ports"]}["http"]


def test_security_context(overlay):
    _, docs = overlay
    pod = pod_spec(docs)["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000 and pod["seccompProfile"]["type"] == "RuntimeDefault"
    container = server_container(docs)["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"]["drop"] == ["ALL"]
    assert container["runAsNonRoot"] is True


def test_read_only_root_has_a_writable_tmp(overlay):
    _, docs = overlay
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in server_container(docs)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "/models" in mounts


def test_settings_are_real_settings_with_valid_values(overlay):
    _, docs = overlay
    data = settings_map(docs)
    known = {"R3HF_" + name.upper() for name in Settings.model_fields}
    unknown = {k for k in data if k.startswith("R3HF_")} - known
    assert not unknown, f"not settings of r3hf serve: {unknown}"
    Settings(**{k[len("R3HF_"):].lower(): v for k, v in data.items() if k in known})  # values parse


def test_selectors_tie_the_objects_to_the_pods(overlay):
    _, docs = overlay
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    matches = lambda selector: selector.items() <= pod_labels.items()  # noqa: E731
    assert matches(one(docs, "Deployment")["spec"]["selector"]["matchLabels"])
    assert matches(one(docs, "Service")["spec"]["selector"])
    assert matches(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    assert matches(one(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"])
    service = one(docs, "Service")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert [e["path"] for e in monitor["spec"]["endpoints"]] == ["/metrics"]


def test_autoscaler_scales_the_deployment_on_queue_depth(overlay):
    _, docs = overlay
    hpa, deployment = one(docs, "HorizontalPodAutoscaler"), one(docs, "Deployment")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "replicas" not in deployment["spec"], "a fixed replica count fights the autoscaler"
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "r3hf_queue_depth"
    assert float(metric["pods"]["target"]["averageValue"]) > 0
    adapter = yaml.safe_load((ROOT / "k8s/prometheus-adapter/values.yaml").read_text())
    served = {rule["name"]["as"] for rule in adapter["rules"]["custom"]}
    assert metric["pods"]["metric"]["name"] in served
    gauges = {f.name for f in Metrics().registry.collect() if f.type == "gauge"}
    for rule in adapter["rules"]["custom"]:
        assert rule["seriesQuery"].split("{")[0] in gauges


def test_gpu_overlay_asks_for_a_gpu_node(rendered):
    docs = rendered["gpu"]
    spec, container = pod_spec(docs), server_container(docs)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    shm = volumes[mounts["/dev/shm"]["name"]]["emptyDir"]
    assert shm["medium"] == "Memory" and shm["sizeLimit"]


def test_gpu_overlay_reads_staged_weights_offline(rendered):
    docs = rendered["gpu"]
    spec, container = pod_spec(docs), server_container(docs)
    models_mount = {m["mountPath"]: m for m in container["volumeMounts"]}["/models"]
    volume = {v["name"]: v for v in spec["volumes"]}[models_mount["name"]]
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert "emptyDir" not in volume and models_mount["readOnly"] is True
    assert claim in {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    data = settings_map(docs)
    assert data["R3HF_MODEL"].startswith("/models/") and data["HF_HUB_OFFLINE"] == "1"
    assert not data["HF_HOME"].startswith("/models"), "the model volume is read-only: the hub cache cannot live there"


def test_cpu_demo_serves_the_embedded_model_without_a_gpu(rendered):
    docs = rendered["cpu-demo"]
    container = server_container(docs)
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert "tolerations" not in pod_spec(docs) and "nodeSelector" not in pod_spec(docs)
    data = settings_map(docs)
    assert "R3HF_MODEL" not in data and data["R3HF_DEVICE"] == "cpu"
