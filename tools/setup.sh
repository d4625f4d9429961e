#!/usr/bin/env bash
# Installs what normtune needs on a Debian machine (idempotent): deno from npm (pinned), the Jupyter
# pieces that execute the notebooks headless, the classic Notebook (to open them interactively; a test
# draws figures through it), Chromium for the report checks, Slurm and munge (a test runs the study on a
# one-node cluster it starts itself: tests/experiments/slurm_test.ts), Mesa's Vulkan drivers (the
# llvmpipe software adapter on which the webgpu tests run without a GPU), OpenBLAS (`--gemm openblas`,
# docs/openblas.md; its tests are never skipped), and the npm dependencies.
# Run as root (or with sudo available). Used by .ci/run and the README's commands.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO_VERSION=2.9.6
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v deno >/dev/null || [ "$(deno --version | head -1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  npm install -g "deno@$DENO_VERSION" >/dev/null
fi
APT_PACKAGES="jupyter-nbconvert jupyter-client python3-ipykernel python3-nbclient jupyter-notebook chromium slurm-wlm munge mesa-vulkan-drivers libopenblas0-pthread"
missing=""
# "ok installed", not just known to dpkg: a removed package keeps a "config-files" entry.
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $missing >/dev/null
fi
deno install --frozen >/dev/null 2>&1 || deno install --frozen
# The Jupyter kernel spec stores deno's absolute path: write it each time in case deno moved.
deno jupyter --install --force >/dev/null
