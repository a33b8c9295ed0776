#!/usr/bin/env bash
# Install what the playground's browser test drives: Debian's chromium and chromium-driver (apt, as root or with
# sudo) and the selenium package (pyproject's `test` extra, installed into .venv by scripts/setup.sh).
# Idempotent: with both binaries present it does nothing and takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup_browser.sh: no apt-get here; install chromium and its driver yourself (the browser test skips)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "setup_browser.sh: need root or sudo to apt-get install chromium chromium-driver" >&2
    exit 0
  fi
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
