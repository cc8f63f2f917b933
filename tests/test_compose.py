"""The compose stack as a file: what `docker compose up` would be told, checked without a Docker engine.

Where the docker client has its compose plugin, `docker compose config` must accept the file too; this
machine's client has none, so that test says so and skips. The structural checks run everywhere: every
CityWatch container runs a real ``citywatch`` command, every ``CITYWATCH_*`` variable it sets is a setting
some service reads (a typo would be silently ignored at run time), every mounted file is in the repository,
and every secret is required instead of defaulted.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from analytics.alerts.settings import AlertSettings
from analytics.settings import AnalyticsSettings
from api.commanding.settings import CommandSettings
from api.settings import ApiSettings
from citywatch.cli import app
from citywatch.settings import CommonSettings
from ingest.settings import IngestSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SETTINGS: tuple[type[BaseSettings], ...] = (
    CommonSettings,
    IngestSettings,
    AnalyticsSettings,
    AlertSettings,
    ApiSettings,
    CommandSettings,
)
# Read by something other than CityWatch's settings classes: the broker account initialiser's passwords
# and the simulator's shell command line.
OTHER_VARIABLES = re.compile(r"CITYWATCH_MQTT_PASSWORD_[A-Z]+|MQTT_SIM_PASSWORD")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _known_variables() -> set[str]:
    names: set[str] = set()
    for settings in SETTINGS:
        prefix = str(settings.model_config.get("env_prefix", "")).upper()
        names.update(prefix + field.upper() for field in settings.model_fields)
    return names


def _citywatch_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "citywatch:latest"
    }


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"the docker client has no compose plugin: {probe.stderr.strip()[:200]}")
    env = tmp_path / ".env"
    secrets = [line.split("=", 1)[0] for line in (ROOT / "deploy/env.example").read_text().splitlines()]
    env.write_text("".join(f"{name}=x{i}\n" for i, name in enumerate(secrets) if name and name[0] != "#"))
    result = subprocess.run(
        [docker, "compose", "--env-file", str(env), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_citywatch_container_runs_a_real_command(compose: dict[str, Any]) -> None:
    services = _citywatch_services(compose)
    assert {"ingest-1", "ingest-2", "analytics", "api"} <= set(services)
    runner = CliRunner()
    for name, service in services.items():
        command = service.get("command")
        if service.get("entrypoint") is not None:
            continue  # the init step and the simulator's shell line: checked below
        assert isinstance(command, list), name
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, f"{name}: citywatch {' '.join(command)}: {result.output}"


def test_every_citywatch_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = _known_variables()
    for name, service in compose["services"].items():
        for variable in service.get("environment") or {}:
            if variable.startswith("CITYWATCH_") and not OTHER_VARIABLES.fullmatch(variable):
                assert variable in known, f"{name}: {variable} is read by no CityWatch setting"


def test_two_ingest_workers_share_the_stream_with_their_own_sessions(compose: dict[str, Any]) -> None:
    env = [compose["services"][f"ingest-{i}"]["environment"] for i in (1, 2)]
    assert env[0]["CITYWATCH_INGEST_CLIENT_ID"] != env[1]["CITYWATCH_INGEST_CLIENT_ID"]
    assert compose["services"]["ingest-1"]["volumes"] != compose["services"]["ingest-2"]["volumes"]


def test_mounted_files_are_in_the_repository(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                if source == "./deploy/mosquitto/certs":
                    continue  # made by deploy/mosquitto/make-dev-certs.sh or the city's PKI
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"


def test_secrets_are_required_not_defaulted() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for secret in re.findall(r"\$\{([A-Z_]+)(:?[-?][^}]*)?\}", text):
        name, rule = secret
        if name == "MQTT_SIM_PASSWORD":
            assert rule in ("", ":-"), "the demo's simulator account is the only optional secret"
            continue
        first = text.index("${" + name)
        assert text[first:].startswith("${" + name + ":?"), f"{name}'s first use must require it (:?)"


def test_grafana_is_provisioned_with_the_data_source_and_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    provider = yaml.safe_load((ROOT / "dashboards/provisioning/dashboards/citywatch.yaml").read_text())
    paths = {p["options"]["path"] for p in provider["providers"]}
    assert paths <= set(mounts), f"the dashboards provider reads {paths}, mounted: {sorted(mounts)}"
    assert list((ROOT / mounts[next(iter(paths))]).glob("*.json")), "no dashboard JSON is mounted"
