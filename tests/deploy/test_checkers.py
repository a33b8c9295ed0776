"""The offline checkers CI runs: hadolint on the Dockerfile, kubernetes-validate and checkov on the rendered overlays."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from deploy_helpers import OVERLAYS, ROOT, find_tool, run_tool

# The Prometheus Operator's CRDs have no schema in kubernetes-validate and none can be fetched offline; their shape is
# asserted field by field in test_manifests.py and test_observability.py instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Each suppression is written next to what it excuses (a checkov.io/skipN annotation or a checkov:skip comment);
# this list makes adding a new one a visible change.
ALLOWED_SKIPS = {
    "CKV_K8S_40": "uid 1000 is the image's own non-root user (Dockerfile: USER 1000); it runs as non-root",
    "CKV_K8S_43": "an image digest exists only after a push; pin it with kustomize `images`",
    "CKV_K8S_15": "cpu-demo only: a locally built image has no registry to pull from",
    "CKV_DOCKER_7": "base images are ARGs with pinned tags, which checkov cannot resolve",
}


def test_hadolint_passes_the_dockerfile():
    result = run_tool([find_tool("hadolint"), "Dockerfile"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("k8s_version", ["1.29.0", "1.37.0"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_accepts_every_builtin_object(rendered, overlay, k8s_version, tmp_path):
    validator = find_tool("kubernetes-validate")
    builtin = [d for d in rendered[overlay] if d["kind"] not in CRD_KINDS]
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    result = run_tool([validator, "--strict", "-k", k8s_version, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(builtin), result.stdout + result.stderr


def test_checkov_finds_nothing_unexcused(rendered_text, tmp_path):
    checkov = find_tool("checkov")
    for overlay, text in rendered_text.items():
        (tmp_path / f"{overlay}.yaml").write_text(text)
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    result = run_tool([checkov, "-d", str(tmp_path), "--framework", "kubernetes", "dockerfile",
                       "--skip-download", "-o", "json"])
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}
    failed = [(c["check_id"], c["resource"]) for r in reports for c in r["results"]["failed_checks"]]
    assert not failed and result.returncode == 0, failed or result.stderr
    skipped = {c["check_id"] for r in reports for c in r["results"]["skipped_checks"]}
    assert skipped <= set(ALLOWED_SKIPS), skipped - set(ALLOWED_SKIPS)
    assert sum(r["summary"]["passed"] for r in reports) > 100
