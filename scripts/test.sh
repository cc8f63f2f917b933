#!/usr/bin/env bash
# The whole test suite: lint, format, types, then unit, integration and end-to-end tests
# (the integration tests start their own Mosquitto and InfluxDB on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
CITYWATCH_BOOTSTRAP_BROWSER=1 scripts/bootstrap.sh
echo "== ruff";   .venv/bin/ruff check .
echo "== format"; .venv/bin/ruff format --check .
echo "== mypy";   .venv/bin/mypy
echo "== pytest"; .venv/bin/python -m pytest "$@"
