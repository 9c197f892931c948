#!/usr/bin/env bash
# Set up .venv (with llama-cpp-python built once per machine for the real-server tests),
# .venv-verl (the small environment the verl and OpenRLHF adapters are tested in) and Debian's
# chromium (the report viewer is tested in a real headless browser), then run the whole test
# suite: what CI runs. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build-llama-cpp.sh
bash scripts/setup-verl-env.sh
bash scripts/setup-browser.sh
exec .venv/bin/python -m pytest -q "$@"
