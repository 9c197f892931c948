#!/usr/bin/env bash
# Install Debian's chromium for the report viewer's browser test (tests/report/test_html_browser.py),
# which drives it with Playwright's Python package: Playwright's own browser download needs a
# network these machines do not have, Debian's package registry is reachable.
# Idempotent: nothing is done when /usr/bin/chromium exists. Runs as root (CI) or through sudo.
# About 2 minutes the first time.
#   usage: scripts/setup-browser.sh
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "scripts/setup-browser.sh: installing chromium needs root (run as root or install sudo)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Update the package lists once, only when apt does not know chromium yet (a fresh image has none).
if ! apt-cache show chromium >/dev/null 2>&1; then
  "${SUDO[@]}" apt-get update
fi
"${SUDO[@]}" apt-get install -y --no-install-recommends chromium
echo "installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
