"""``citywatch dashboards push``: the dashboards (and, when asked, their data source) into a Grafana
through its HTTP API (adapter; grafana-client).

Idempotent: the folder is created only when missing; a dashboard is written (``overwrite``) only when
Grafana holds another version of it or holds it in another folder, so a second push writes nothing and
Grafana's version history stays meaningful. The data source ``citywatch-influx`` is created when missing
and updated when its address, database or mode differ (the token goes with either write; Grafana never
returns it, so an unchanged data source keeps the one it has).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards import PushError
from dashboards.influxql import DATASOURCE_TYPE, DATASOURCE_UID

log = logging.getLogger(__name__)

MESSAGE = "citywatch dashboards push"
_NOT_COMPARED = frozenset({"id", "version"})  # Grafana's own bookkeeping in a stored dashboard
_DATASOURCE_KEYS = ("name", "type", "access", "url", "jsonData")  # what decides a data source update


@dataclass(frozen=True, slots=True)
class PushReport:
    folder_created: bool
    written: tuple[str, ...]  # dashboard uids written
    unchanged: tuple[str, ...]
    datasource: str  # "created", "updated", "unchanged" or "not pushed"


def influx_datasource(
    url: str, database: str, *, token: str | None = None, user: str | None = None, password: str | None = None
) -> dict[str, Any]:
    """The data source every dashboard names, as ``dashboards/provisioning/datasources/citywatch.yaml``
    describes it: InfluxQL over the v1 API (1.x natively; 2.x and 3.x with a token and a database mapped
    to the bucket)."""
    spec: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": "CityWatch InfluxDB",
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": url,
        "jsonData": {"version": "InfluxQL", "dbName": database, "httpMode": "POST", "timeInterval": "1m"},
    }
    secure: dict[str, str] = {}
    if token:
        spec["jsonData"]["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = f"Token {token}"
    if user:
        spec["user"] = user
        secure["password"] = password or ""
    if secure:
        spec["secureJsonData"] = secure
    return spec


class GrafanaPush:
    """One Grafana, one folder: each step checks what Grafana holds before it writes."""

    def __init__(self, api: GrafanaApi, folder_uid: str, folder_title: str) -> None:
        self.api: Any = api  # grafana-client's element methods are not annotated
        self.folder_uid = folder_uid
        self.folder_title = folder_title

    def ensure_folder(self) -> bool:
        """Create the folder if it is missing; True when it was created."""
        if self._get(f"folder {self.folder_uid}", lambda: self.api.folder.get_folder(self.folder_uid)):
            return False
        self._call(
            f"create folder {self.folder_title!r}",
            lambda: self.api.folder.create_folder(self.folder_title, uid=self.folder_uid),
        )
        log.info("created folder %s (%s)", self.folder_title, self.folder_uid)
        return True

    def upsert_dashboard(self, model: Mapping[str, Any]) -> bool:
        """Write ``model`` into the folder unless Grafana already holds exactly it there."""
        uid = str(model["uid"])
        held = self._get(f"dashboard {uid}", lambda: self.api.dashboard.get_dashboard(uid))
        if (
            held
            and held.get("meta", {}).get("folderUid") == self.folder_uid
            and _same(held["dashboard"], model)
        ):
            return False
        body = {"dashboard": {**model, "id": None}, "folderUid": self.folder_uid, "overwrite": True}
        self._call(
            f"write dashboard {uid}",
            lambda: self.api.dashboard.update_dashboard({**body, "message": MESSAGE}),
        )
        log.info("wrote dashboard %s", uid)
        return True

    def upsert_datasource(self, spec: Mapping[str, Any]) -> str:
        uid = str(spec["uid"])
        held = self._get(f"data source {uid}", lambda: self.api.datasource.get_datasource_by_uid(uid))
        if not held:
            self._call(f"create data source {uid}", lambda: self.api.datasource.create_datasource(dict(spec)))
            return "created"
        if all(held.get(k) == spec.get(k) for k in _DATASOURCE_KEYS):
            return "unchanged"
        self._call(
            f"update data source {uid}",
            lambda: self.api.datasource.update_datasource_by_uid(uid, {**held, **spec}),
        )
        return "updated"

    def _get(self, what: str, call: Any) -> dict[str, Any] | None:
        """What Grafana holds, or None when it answers 404."""
        try:
            found: dict[str, Any] = call()
        except GrafanaClientError as exc:
            if exc.status_code == 404:
                return None
            raise PushError(f"read {what}", str(exc)) from exc
        except (GrafanaException, OSError) as exc:  # niquests' errors are OSErrors
            raise PushError(f"read {what}", str(exc)) from exc
        return found

    @staticmethod
    def _call(what: str, call: Any) -> None:
        try:
            call()
        except (GrafanaException, OSError) as exc:
            raise PushError(what, str(exc)) from exc


def _same(held: Mapping[str, Any], model: Mapping[str, Any]) -> bool:
    def strip(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in _NOT_COMPARED}

    return strip(held) == strip(model)


def push(
    api: GrafanaApi,
    models: Iterable[Mapping[str, Any]],
    folder_uid: str,
    folder_title: str,
    datasource: Mapping[str, Any] | None = None,
) -> PushReport:
    """The folder, then the data source (when given), then every dashboard."""
    target = GrafanaPush(api, folder_uid, folder_title)
    created = target.ensure_folder()
    source = "not pushed" if datasource is None else target.upsert_datasource(datasource)
    written: list[str] = []
    unchanged: list[str] = []
    for model in models:
        (written if target.upsert_dashboard(model) else unchanged).append(str(model["uid"]))
    return PushReport(created, tuple(written), tuple(unchanged), source)


def connect(url: str, token: str, timeout_s: float) -> GrafanaApi:
    """A client sending ``token`` as ``Authorization: Bearer``."""
    api: GrafanaApi = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    return api
