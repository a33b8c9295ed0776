#!/usr/bin/env bash
# Benchmark tooling only: OpenRLHF's own reward server (openrlhf.cli.serve_rm) in its own venv, .venv-openrlhf,
# with the same torch and transformers as ours. The package goes in with --no-deps plus the pure-Python packages
# its imports need; flash_attn (a CUDA-only build, used for sample packing alone) is replaced by the stand-in in
# flash_attn_stub/, which load_tests/peer/run_openrlhf.sh puts on PYTHONPATH. Packing stays off.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.venv-openrlhf
transformers_version=$(.venv/bin/python -c "import transformers; print(transformers.__version__)")
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet torch==2.13.0 "transformers==$transformers_version" \
  peft einops pylatexenc fastapi uvicorn accelerate sympy aiohttp pillow torchdata ninja packaging psutil \
  py-cpuinfo pydantic hjson msgpack tqdm
DS_BUILD_OPS=0 "$venv/bin/python" -m pip install --quiet --no-build-isolation deepspeed
"$venv/bin/python" -m pip install --quiet --no-deps "openrlhf==${OPENRLHF_VERSION:-0.11.2}"
PYTHONPATH="$PWD/load_tests/peer/flash_attn_stub" "$venv/bin/python" -c "import openrlhf.cli.serve_rm" \
  && echo "openrlhf peer ready in $venv"
