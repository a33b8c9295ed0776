#!/usr/bin/env bash
# Create (or reuse) .venv-trainers: the real trainer releases our adapters are tested against, plus the client.
#
# One venv for all four trainers, separate from .venv (the server's). The trainers install with --no-deps plus the
# few packages their reward code paths import, because their full requirement lists pull CUDA builds, vLLM,
# DeepSpeed and flash-attn, none of which the reward path touches. transformers is pinned inside verl 0.9.1's range
# (>=5.5.3,<5.11, which TRL 1.16 accepts too); AReaL 1.0.4 asks for <=5.3 but its reward path imports none of it.
#
# The venv is reused while this file is unchanged (a stamp holds its hash); edit a pin and the next run rebuilds it.
# R3HF_TRAINERS_VENV overrides the location.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${R3HF_TRAINERS_VENV:-.venv-trainers}"
stamp="$venv/.r3hf-setup-stamp"
want="$(sha256sum scripts/setup_trainers.sh | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "import r3hf_client" 2>/dev/null; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet)
"${pip[@]}" --upgrade pip
"${pip[@]}" torch==2.13.0  # the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
# TRL with its own dependencies, held to versions the other trainers accept.
"${pip[@]}" trl==1.16.0 accelerate==1.15.0 datasets==5.2.0 transformers==5.10.4
"${pip[@]}" --no-deps openrlhf==0.11.2 verl==0.9.1 areal==1.0.4
# What their reward paths import:
#   openrlhf.utils.agent (SingleTurnAgentExecutor): aiohttp, pylatexenc
#   verl.protocol + verl.experimental.reward_loop: ray, tensordict, codetiming, hydra-core, dill, orjson, torchdata
#   areal.api.reward_api (AsyncRewardWrapper; the areal package imports its infra first): the rest
"${pip[@]}" aiohttp==3.14.5 pylatexenc==2.11 \
  ray==2.60.0 tensordict==0.10.0 codetiming==1.4.0 hydra-core==1.3.8 dill==0.4.1 orjson==3.13.0 torchdata==0.11.0 \
  colorlog==6.12.0 tenacity==9.2.1 Flask==3.1.3 lark==1.3.1 uvloop==0.23.0 numba==0.68.1 pillow==13.0.0 \
  einops==0.8.2 aiofiles==25.1.0 openai==3.57.0 httpx==0.28.1
"${pip[@]}" matplotlib==3.11.2  # the credit experiment's figure (experiments/, run in this venv)
"${pip[@]}" -e .  # the thin client (httpx, pydantic): what a trainer installs to use the adapters
"$venv/bin/python" - <<'EOF'
import importlib
for name in ("trl", "openrlhf.utils.agent", "verl.protocol", "verl.experimental.reward_loop", "areal.api.reward_api",
             "r3hf_client"):
    importlib.import_module(name)
EOF
echo "$want" > "$stamp"
