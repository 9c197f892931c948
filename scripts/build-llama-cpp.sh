#!/usr/bin/env bash
# Build llama-cpp-python from source once (no prebuilt wheel runs on these machines), keep the
# wheel in a per-user cache (~/.cache/gtalign/wheels, shared by every clone on the machine) and
# install it with its server extras into .venv. Idempotent: a cached wheel is reused, an installed
# matching version is left alone. -DGGML_NATIVE=OFF keeps the wheel portable across CPUs, so a
# shared cache stays valid. About 7-9 minutes on 2 cores the first time.
# Usage: scripts/build-llama-cpp.sh   (env: LLAMA_CPP_VERSION, WHEEL_DIR, PYTHON)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
WHEEL_DIR="${WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gtalign/wheels}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PIP=("$PYTHON" -m pip --disable-pip-version-check)
cd "$ROOT"
mkdir -p "$WHEEL_DIR"

installed="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))' 2>/dev/null || true)"
if [[ "$installed" == "$VERSION" ]] && "$PYTHON" -c 'import llama_cpp.server' 2>/dev/null; then
  echo "llama-cpp-python $VERSION (with server) already installed"
  exit 0
fi

shopt -s nullglob
wheels=("$WHEEL_DIR"/llama_cpp_python-"$VERSION"-*.whl)
if (( ${#wheels[@]} == 0 )); then
  echo "building llama-cpp-python $VERSION into $WHEEL_DIR (takes several minutes)"
  start=$SECONDS
  CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_NATIVE=OFF" \
    "${PIP[@]}" wheel --no-deps --wheel-dir "$WHEEL_DIR" "llama-cpp-python==$VERSION"
  echo "built in $((SECONDS - start)) s"
  wheels=("$WHEEL_DIR"/llama_cpp_python-"$VERSION"-*.whl)
fi

# The wheel's own runtime dependencies and the [server] extra, resolved from the index, with torch
# pinned so nothing can pull a CUDA build.
"${PIP[@]}" install --quiet -c constraints.txt --find-links "$WHEEL_DIR" --only-binary llama-cpp-python \
  "llama-cpp-python[server]==$VERSION" 2>&1 | grep -v '^WARNING: Location' || true
"$PYTHON" -c 'import llama_cpp, llama_cpp.server; print("llama-cpp-python", llama_cpp.__version__, "ready")'
