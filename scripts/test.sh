#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every test. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_deploy_tools.sh  # hadolint, kubectl kustomize, kubernetes-validate, checkov, locust for tests/deploy
bash scripts/setup_browser.sh       # chromium + chromium-driver for the playground's browser test
# .venv-trainers: TRL, OpenRLHF, verl, AReaL releases for tests/trainers. Without it those tests skip, naming why;
# in CI (CI=true) they fail instead, so a failed build stops here.
bash scripts/setup_trainers.sh || { [ "${CI:-}" != true ] || exit 1; echo "warning: .venv-trainers not built; tests/trainers will skip" >&2; }
# The fast lane (pytest -m "not slow": unit and fake-runner tests) with torch and transformers unimportable, which
# shows that they need neither; then every test.
R3HF_BLOCK_TORCH=1 .venv/bin/python -m pytest -m "not slow" -q tests/unit tests/reliability
R3HF_REQUIRE_BROWSER=1 .venv/bin/python -m pytest "$@"
