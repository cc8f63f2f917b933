#!/usr/bin/env bash
# The whole pipeline on this machine: broker, database, ingest and a simulated city.
# Extra arguments go to `citywatch run` (see `.venv/bin/citywatch run --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/citywatch run "$@"
