#!/usr/bin/env bash
# Create .venv and install the server, its tests' dependencies and a pinned torch.
# R3HF_TORCH_SPEC picks the torch to install (default: torch==2.13.0, the CPU wheel CI uses);
# on a GPU machine install the CUDA build of torch for your driver first and set R3HF_TORCH_SPEC=skip.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
spec="${R3HF_TORCH_SPEC:-torch==2.13.0}"
if [ "$spec" != "skip" ]; then
  .venv/bin/python -m pip install --quiet "$spec"
fi
.venv/bin/python -m pip install --quiet -e ".[server,test]"
