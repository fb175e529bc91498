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
  cp node_modules/@twilio/voice-sdk/dist/twilio.min.js agent_ui/static/vendor/  # inbox softphone
else
  echo "npm not found: install Node.js (npm) so the web pages get their Socket.IO client and the Twilio Voice SDK" >&2
  exit 1
fi

# Test-only system packages from Debian: Chromium for the browser tests (the IPA font draws
# Japanese in screenshots) and Dovecot, a real IMAP server for the e-mail poller's tests.
DEBIAN_TEST_PACKAGES="chromium fonts-ipafont-gothic dovecot-imapd"
missing_packages() {
  for package in $DEBIAN_TEST_PACKAGES; do
    dpkg -s "$package" >/dev/null 2>&1 || echo "$package"
  done
}
if [ "${1:-}" = "--test" ] && [ -n "$(missing_packages)" ]; then
  SUDO=""
  [ "$(id -u)" = "0" ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2046
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(missing_packages)
fi
