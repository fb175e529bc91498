#!/usr/bin/env bash
# Sets up a fresh machine for omohub: Python venv, browser assets, and (for tests) Chromium.
#   scripts/setup.sh          venv + npm assets
#   scripts/setup.sh --test   also the test extras and Debian's chromium for browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "${1:-}" = "--test" ]; then
  .venv/bin/python -m pip install --quiet -e ".[test]"
else
  .venv/bin/python -m pip install --quiet -e .
fi

if command -v npm >/dev/null 2>&1; then
  npm ci --no-audit --no-fund --loglevel=error
  mkdir -p agent_ui/static/vendor
  cp node_modules/socket.io-client/dist/socket.io.min.js agent_ui/static/vendor/
else
  echo "npm not found: install Node.js (npm) so the web pages get their Socket.IO client" >&2
  exit 1
fi

browser_missing() {
  ! command -v chromium >/dev/null 2>&1 || ! dpkg -s fonts-ipafont-gothic >/dev/null 2>&1
}
# Browser tests drive Debian's Chromium; the IPA font draws Japanese in screenshots.
if [ "${1:-}" = "--test" ] && browser_missing; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-ipafont-gothic
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-ipafont-gothic
  fi
fi
