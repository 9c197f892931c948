#!/usr/bin/env bash
# Create .venv-verl: a small environment in which gtalign's verl adapter is tested against verl's
# own reward managers (verl pins transformers < 5.11, which conflicts with the main stack).
# OpenRLHF's reward executor is installed here too: OpenRLHF itself needs CUDA builds
# (flash-attn, deepspeed), but the module that loads and calls a custom reward_func needs only
# what this environment already has.
#
# Idempotent: re-running only installs what is missing. verl and OpenRLHF are installed --no-deps
# (their declared dependencies pull GPU stacks); the few packages their reward code paths import
# are listed.
#   usage: scripts/setup-verl-env.sh [VENV]   (default: .venv-verl next to this script's repo)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv-verl}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${GTALIGN_TORCH_VERSION:-2.13.0}"
VERL_VERSION="${GTALIGN_VERL_VERSION:-0.9.1}"
OPENRLHF_VERSION="${GTALIGN_OPENRLHF_VERSION:-0.11.2}"

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
printf 'torch==%s\ntransformers<5.11\n' "$TORCH_VERSION" >"$CONSTRAINTS"

quiet() { grep -v '^WARNING: Location' || true; }

"$PY" -m pip install --quiet --no-warn-conflicts -c "$CONSTRAINTS" "torch==$TORCH_VERSION" 2>&1 | quiet
"$PY" -m pip install --quiet --no-warn-conflicts --no-deps "verl==$VERL_VERSION" "openrlhf==$OPENRLHF_VERSION" 2>&1 | quiet
"$PY" -m pip install --quiet --no-warn-conflicts -c "$CONSTRAINTS" \
  "transformers>=5.5.3,!=5.6.0,<5.11" "tensordict>=0.8.0,!=0.9.0,<=0.10.0" \
  ray hydra-core codetiming pybind11 pylatexenc aiohttp sympy numpy pandas pyarrow dill pytest 2>&1 | quiet
"$PY" -m pip install --quiet --no-warn-conflicts -c "$CONSTRAINTS" -e "$ROOT" 2>&1 | quiet
"$PY" - <<'PY'
import importlib.metadata as m
print(" ".join(f"{n}=={m.version(n)}" for n in ("verl", "openrlhf", "torch", "transformers", "tensordict", "ray", "gtalign")))
PY
