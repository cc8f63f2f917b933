#!/usr/bin/env bash
# Install what CityWatch needs on Debian / Ubuntu: Mosquitto, InfluxDB 1.x and PostgreSQL from the OS packages
# when missing, and the Python packages into .venv. Safe to run again; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "CityWatch needs Python 3.11 or newer (found $(python3 --version))" >&2
    exit 1
}

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v influx >/dev/null 2>&1 || missing+=(influxdb-client)
command -v mosquitto_ctrl >/dev/null 2>&1 || missing+=(mosquitto-clients)  # per-device broker accounts
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# PostgreSQL: the alert store's tests run against a real server too (its programs, not a service).
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# Chromium (Debian's, not a browser download) for the crew page's browser test; only the test command asks.
if [ "${CITYWATCH_BOOTSTRAP_BROWSER:-0}" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing OS packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # Debian's packages try to start system services; CityWatch runs its own instances on free
    # loopback ports under var/, so whether those start does not matter.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=.venv/.citywatch-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -c 'import citywatch, paho.mqtt, numpy, pytest' # fail here if the install did not work
    echo "$want" > "$stamp"
fi
