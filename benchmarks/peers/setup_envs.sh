#!/usr/bin/env bash
# Create the per-framework virtual environments if they are missing (idempotent).
#   /tmp/tfenv     : tensorflow-cpu 2.21.0, tensorflow-probability 0.25.0, tf-keras 2.21.0,
#                    keras 3.15.1 (raw TFP runners)
#   /tmp/torchenv  : torch==2.13.0 (CPU build), zuko, nflows
#   /tmp/jaxenv    : jax, jaxlib, flowjax (CPU)
# Versions used for the recorded runs are pinned below; everything comes from PyPI.
set -euo pipefail
PY=${PYTHON:-python3}

if [ ! -x /tmp/tfenv/bin/python ]; then
  "$PY" -m venv /tmp/tfenv
  /tmp/tfenv/bin/pip install -q tensorflow-cpu==2.21.0 tensorflow-probability==0.25.0 \
      tf-keras==2.21.0 keras==3.15.1
fi
if ! /tmp/torchenv/bin/python -c "import torch, zuko, nflows" 2>/dev/null; then
  "$PY" -m venv /tmp/torchenv
  # the pin matters: an unpinned `torch` would pull a multi-GB CUDA build
  /tmp/torchenv/bin/pip install -q torch==2.13.0
  /tmp/torchenv/bin/pip install -q zuko==1.6.0 nflows==0.14
fi
if ! /tmp/jaxenv/bin/python -c "import jax, flowjax" 2>/dev/null; then
  "$PY" -m venv /tmp/jaxenv
  /tmp/jaxenv/bin/pip install -q jax==0.10.2 jaxlib==0.10.2 flowjax==19.1.2
fi
echo "envs ready"
