"""The dashboard and the alerts query only metrics the server exposes, and cover what an operator needs to see."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from deploy_helpers import ROOT
from r3hf_server.api.metrics import Metrics

DASHBOARD = json.loads((ROOT / "deploy/grafana/r3hf-dashboard.json").read_text())
RULES = yaml.safe_load((ROOT / "k8s/base/prometheusrule.yaml").read_text())
METRIC_NAME = re.compile(r"\b(r3hf_[a-z_]+)\b")


def exposed_series_names() -> set[str]:
    """Every series name /metrics can carry: counters' _total, histograms' _bucket/_sum/_count, gauges as named."""
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    return names


def dashboard_exprs() -> list[str]:
    return [t["expr"] for panel in DASHBOARD["panels"] for t in panel["targets"]]


def alert_rules() -> list[dict]:
    return [rule for group in RULES["spec"]["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_queries_name_only_exposed_series(source):
    exprs = dashboard_exprs() if source == "dashboard" else [r["expr"] for r in alert_rules()]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used and used <= exposed_series_names(), used - exposed_series_names()


def test_dashboard_covers_throughput_latency_queue_batches_and_errors():
    titles = " ".join(panel["title"].lower() for panel in DASHBOARD["panels"])
    for topic in ("throughput", "latency", "queue", "batch fill", "error", "ready"):
        assert topic in titles, topic
    exprs = " ".join(dashboard_exprs())
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(r3hf_request_duration_seconds_bucket" in exprs
    for split in ("queue", "tokenize", "inference"):
        assert f"r3hf_{split}_duration_seconds_bucket" in exprs


def test_dashboard_is_importable_anywhere():
    assert DASHBOARD["uid"] and DASHBOARD["title"]
    variables = {v["name"] for v in DASHBOARD["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]  # no hard-coded datasource
        assert all('namespace=~"$namespace"' in t["expr"] for t in panel["targets"]), panel["title"]


def test_alerts_that_matter_exist_with_severity_and_a_summary():
    alerts = {rule["alert"]: rule for rule in alert_rules()}
    assert {"R3HFNoReadyReplica", "R3HFHighErrorRatio", "R3HFQueueSaturated"} <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["for"], name
        assert 'job="r3hf-reward-server"' in rule["expr"], f"{name} would match other jobs' series"
    assert "absent(" in alerts["R3HFNoReadyReplica"]["expr"], "must fire when no replica is scraped at all"


def test_deployment_doc_lists_exactly_the_exposed_metrics():
    doc = (ROOT / "docs/deployment.md").read_text()
    listed = set(re.findall(r"^\| `(r3hf_[a-z_]+)` \|", doc, re.M))
    families = {f.name + ("_total" if f.type == "counter" else "") for f in Metrics().registry.collect()}
    assert listed == families


def test_readme_deployment_commands_point_at_real_paths():
    readme = (ROOT / "README.md").read_text()
    for path in re.findall(r"kubectl apply -k (\S+)", readme) + re.findall(r"(k8s/[\w./-]+\.(?:yaml|env))", readme):
        assert (ROOT / path).exists(), path
    assert "deploy/grafana/r3hf-dashboard.json" in readme and "docs/deployment.md" in readme
