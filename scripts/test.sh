#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_deploy_tools.sh  # hadolint, kubectl kustomize, kubernetes-validate, checkov, locust for tests/deploy
.venv/bin/python -m pytest "$@"
