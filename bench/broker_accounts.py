"""How issuing a device account scales with the number of accounts on the broker (dynamic-security plugin).

Mosquitto 2.0's plugin rewrites its whole JSON file after every change, and each device has a client and
a role of its own (no %u in 2.0's ACLs), so an issue costs more as the city grows. This starts an
authenticated LocalMosquitto, issues accounts in steps, and prints the time per issue at each size, the
size of the plugin's file, and how long a device login takes.

    .venv/bin/python bench/broker_accounts.py [--sizes 0,1000,5000] [--sample 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from citywatch.broker_accounts import BrokerAccounts, DeviceCredentials
from citywatch.localstack import LocalMosquitto


def login_seconds(broker: LocalMosquitto, credentials: DeviceCredentials) -> float:
    answered = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(credentials.username, credentials.password)
    client.on_connect = lambda *_: answered.set()
    started = time.perf_counter()
    client.connect(broker.host, broker.port)
    client.loop_start()
    answered.wait(10)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,1000,5000", help="account counts to measure at")
    parser.add_argument("--sample", type=int, default=50, help="issues timed at each size")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalMosquitto(Path(tmp) / "mq", auth=True) as broker,
        BrokerAccounts(broker.admin_url, timeout_s=120) as admin,
    ):
        issued = 0
        for size in sizes:
            while issued < size:  # fill up to the size (untimed)
                admin.issue(f"FILL-{issued:07d}")
                issued += 1
            times = []
            for n in range(args.sample):
                started = time.perf_counter()
                last = admin.issue(f"LMP-{size:07d}-{n:04d}")
                times.append(time.perf_counter() - started)
            issued += args.sample
            login = min(login_seconds(broker, last) for _ in range(5))
            rows.append(
                (
                    size,
                    statistics.median(times) * 1000,
                    max(times) * 1000,
                    broker.dynsec_path.stat().st_size / 1e6,
                    login * 1000,
                )
            )
    print(f"{'accounts':>9} {'issue ms (median)':>18} {'issue ms (max)':>15} {'file MB':>8} {'login ms':>9}")
    for size, median, worst, megabytes, login in rows:
        print(f"{size:>9,} {median:>18.1f} {worst:>15.1f} {megabytes:>8.2f} {login:>9.1f}")


if __name__ == "__main__":
    main()
