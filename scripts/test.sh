#!/usr/bin/env bash
# Sets up (idempotent) and runs the whole test suite: lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
