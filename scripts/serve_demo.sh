#!/usr/bin/env bash
# Set up (scripts/setup.sh) and serve the embedded demo reward model on 127.0.0.1:8000. Extra arguments go to `r3hf serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/r3hf serve "$@"
