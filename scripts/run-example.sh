#!/usr/bin/env bash
# Set up .venv and run the main job on the embedded default: score the shipped example rollouts
# with the paper preset, then show one of them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh dev,embedded,serve
.venv/bin/gtalign score --example "$@"
