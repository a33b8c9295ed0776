# syntax=docker/dockerfile:1
# R3HF token-reward server. Two images from one file, picked with --build-arg VARIANT:
#   cpu (default): python slim base + the CPU build of torch; `docker run -p 8000:8000 IMAGE` serves the baked-in demo
#                  reward model with no network.
#   gpu:           a CUDA runtime base + a CUDA build of torch (CUDA_TORCH_INDEX_URL picks the build that matches
#                  your driver, e.g. https://download.pytorch.org/whl/cu126; CUDA_BASE the matching runtime image).
# The install steps are scripts/setup.sh's: `pip install torch==<pin>` and then the package's `server` extra
# (tests/deploy/test_dockerfile.py keeps the pins in step, and CI runs setup.sh itself).
ARG VARIANT=cpu
ARG CPU_BASE=python:3.11-slim-bookworm
ARG CUDA_BASE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
ARG TORCH_SPEC=torch==2.13.0

# checkov:skip=CKV_DOCKER_7: the base images are ARGs with pinned tags (python:3.11-slim-bookworm, nvidia/cuda:12.8.1-...)
FROM ${CPU_BASE} AS base-cpu

FROM ${CUDA_BASE} AS base-gpu
# Ubuntu's python, unpinned: the CUDA base image fixes the distro release, and its security updates should flow in.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

# torch in its own layer (it changes far less often than the code), from the index of the wanted build.
FROM base-cpu AS torch-cpu
ARG TORCH_SPEC
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python3 -m venv /opt/r3hf \
 && /opt/r3hf/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

FROM base-gpu AS torch-gpu
ARG TORCH_SPEC
ARG CUDA_TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN python3 -m venv /opt/r3hf \
 && /opt/r3hf/bin/pip install --no-cache-dir --index-url "${CUDA_TORCH_INDEX_URL}" "${TORCH_SPEC}"

# torch-${VARIANT} and base-${VARIANT} are stages of this file, not registry images.
# hadolint ignore=DL3006
FROM torch-${VARIANT} AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client ./client
COPY service ./service
# A regular (not editable) install: the demo model is package data, so it lands in the venv with the code.
RUN /opt/r3hf/bin/pip install --no-cache-dir ".[server]"

# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="r3hf-reward-server" \
      org.opencontainers.image.description="Per-token R3HF rewards from a causal reward model ($VARIANT build)" \
      org.opencontainers.image.licenses="Apache-2.0"
# Ubuntu-based CUDA images already own uid 1000 (user "ubuntu"): free it so the server's uid is 1000 on both bases.
RUN if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
 && groupadd --gid 1000 r3hf \
 && useradd --uid 1000 --gid 1000 --create-home --shell /usr/sbin/nologin r3hf \
 && mkdir -p /models \
 && chown 1000:1000 /models
COPY --from=builder /opt/r3hf /opt/r3hf
# R3HF_HOST: listen on every interface inside the container (the server's own default is loopback only).
# HF_HOME: the hub cache lives on the /models volume, so weights survive restarts and the root filesystem can be
#   read-only. HF_HUB_OFFLINE=1: never reach the hub at start-up; the demo model is inside the image and real weights
#   are staged on /models beforehand. Pass -e HF_HUB_OFFLINE=0 to let `R3HF_MODEL=<hub id>` download on first start.
ENV PATH=/opt/r3hf/bin:$PATH \
    R3HF_HOST=0.0.0.0 \
    R3HF_PORT=8000 \
    HF_HOME=/models/huggingface \
    HF_HUB_OFFLINE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/models"]
WORKDIR /home/r3hf
USER 1000:1000
EXPOSE 8000
# /health is the liveness signal (process and batch worker alive); the start period covers a slow model load.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('R3HF_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["r3hf", "serve"]
