#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_deploy_tools.sh  # hadolint, kubectl kustomize, kubernetes-validate, checkov, locust for tests/deploy
bash scripts/setup_browser.sh       # chromium + chromium-driver for the playground's browser test
R3HF_REQUIRE_BROWSER=1 .venv/bin/python -m pytest "$@"
