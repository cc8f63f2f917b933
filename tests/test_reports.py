"""The weekly assessment and the monthly bulletin: periods in the city's clock, the report model from
hand-made sources (ranking, overdue faults, nights), the HTML with its charts, the CSV files read back,
and (integration) the InfluxQL of the rate source and the `citywatch report` command on a real InfluxDB."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from typer.testing import CliRunner

from analytics.alerts import AlertConfigError
from analytics.alerts.model import Alert, AlertState, Severity
from analytics.engine import KpiTable
from analytics.lineproto import kpi_lines
from analytics.reports import ReportError
from analytics.reports.files import read_csv, write_report
from analytics.reports.html import render_html
from analytics.reports.model import RateRow, Report, ReportConfig, build_report
from analytics.reports.period import Period, PeriodKind
from analytics.reports.svg import Series, axis_floor, bar_chart, line_chart
from analytics.reports.tables import Column, Kind, from_csv, report_tables, to_csv
from tests.conftest import InfluxTarget as InfluxDatabase

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR = 3_600_000
S = AlertState


def at(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> int:
    return round(dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI).timestamp() * 1000)


def alert(
    name: str,
    district: str,
    opened: int,
    deadline: int,
    state: AlertState = S.OPEN,
    resolved: int | None = None,
    road: str = "road-1",
) -> Alert:
    return Alert(
        id=f"lamp_failure:{name}:{opened}",
        key=f"lamp_failure:{name}",
        rule="lamp_failure",
        family="streetlight",
        subject_kind="lamp",
        subject=name,
        district=district,
        road=road,
        grid_cell=f"grid-{district}",
        crew=f"crew-{district}",
        severity=Severity.ORDINARY,
        state=state,
        opened_ms=opened,
        deadline_ms=deadline,
        explanation=f"lamp {name} dark",
        resolved_ms=resolved,
    )


class StubRates:
    """Nightly points held in memory, served for a window like the InfluxDB source."""

    def __init__(self, rows: dict[str, list[RateRow]]) -> None:
        self.rows = rows
        self.asked: list[tuple[str, int, int]] = []

    def nightly(self, scope: str, start_ms: int, end_ms: int) -> Sequence[RateRow]:
        self.asked.append((scope, start_ms, end_ms))
        return [r for r in self.rows.get(scope, []) if start_ms <= r.at_ms < end_ms]


class StubAlerts:
    """The store's contract: alerts whose deadline or opening falls in the window."""

    def __init__(self, alerts: list[Alert]) -> None:
        self.alerts = alerts

    def alerts_between(self, start_ms: int, end_ms: int) -> list[Alert]:
        return [
            a for a in self.alerts if start_ms <= a.deadline_ms < end_ms or start_ms <= a.opened_ms < end_ms
        ]


def night_rows(scope_id: str, lighting: float, intact: float, dip: float | None = None) -> list[RateRow]:
    """Every night of November: checks at 17:50, 22:00 and 02:00, the night's figures at 06:30."""
    rows = []
    for day in range(1, 31):
        evening = dt.date(2026, 11, day)
        morning = evening + dt.timedelta(days=1)
        low = dip if dip is not None and day == 10 else lighting
        for when in (at(11, day, 17, 50), at(11, day, 22), at(morning.month, morning.day, 2)):
            rows.append(RateRow(scope_id, when, intact_rate=intact))
        switch_off = at(morning.month, morning.day, 6, 30)
        rows.append(RateRow(scope_id, switch_off, lighting_rate_min=low, lighting_rate_mean=lighting))
    # the night of 31 October ends on the morning of 1 November: not November's
    rows.append(RateRow(scope_id, at(11, 1, 6, 30), lighting_rate_min=0.10, lighting_rate_mean=0.10))
    rows.append(RateRow(scope_id, at(11, 1, 2), intact_rate=0.10))
    return rows


NOVEMBER = Period.of(PeriodKind.MONTHLY, dt.date(2026, 12, 1), "Asia/Shanghai")
BACKLOG = alert("old", "wuchang", at(9, 1), at(9, 2))  # open since September


def november_alerts() -> list[Alert]:
    return [
        # wuchang: one of two on time (50 %), the late one still open
        alert("w1", "wuchang", at(11, 3, 8), at(11, 4, 8), S.RESOLVED, at(11, 4, 7)),
        alert("w2", "wuchang", at(11, 20, 8), at(11, 21, 8), S.ACKNOWLEDGED, road="<b>Jiefang & 1</b>"),
        BACKLOG,
        # hongshan: two of two on time
        alert("h1", "hongshan", at(11, 5), at(11, 6), S.CLOSED, at(11, 5, 3)),
        alert("h2", "hongshan", at(11, 7), at(11, 8), S.RESOLVED, at(11, 7, 9)),
        # jianghan and hanyang: one of one; qiaokou: nothing due at all
        alert("j1", "jianghan", at(11, 12), at(11, 13), S.RESOLVED, at(11, 12, 2)),
        alert("y1", "hanyang", at(11, 14), at(11, 15), S.RESOLVED, at(11, 14, 2)),
    ]


def november_rates() -> StubRates:
    return StubRates(
        {
            "district": [
                *night_rows("wuchang", 0.99, 0.97),
                *night_rows("hongshan", 0.98, 0.96, dip=0.90),
                *night_rows("jianghan", 0.99, 0.98),
                *night_rows("qiaokou", 0.99, 0.98),
                # hanyang: no rate series at all (its controllers never reported)
            ],
            "city": night_rows("city", 0.985, 0.97, dip=0.95),
        }
    )


def november_report(generated_ms: int = at(12, 2, 9)) -> Report:
    return build_report(
        NOVEMBER, november_rates(), StubAlerts(november_alerts()), generated_ms, ReportConfig()
    )


# -- periods ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "first", "last", "label"),
    [
        (dt.date(2026, 11, 23), dt.date(2026, 11, 16), dt.date(2026, 11, 22), "2026-W47"),  # a Monday
        (dt.date(2026, 11, 25), dt.date(2026, 11, 16), dt.date(2026, 11, 22), "2026-W47"),  # a Wednesday
        (dt.date(2026, 11, 22), dt.date(2026, 11, 9), dt.date(2026, 11, 15), "2026-W46"),  # a Sunday
        (dt.date(2027, 1, 4), dt.date(2026, 12, 28), dt.date(2027, 1, 3), "2026-W53"),
    ],
)
def test_the_weekly_period_is_the_last_whole_iso_week(
    end: dt.date, first: dt.date, last: dt.date, label: str
) -> None:
    period = Period.of(PeriodKind.WEEKLY, end, "Asia/Shanghai")
    assert (period.first_day, period.last_day, period.label) == (first, last, label)
    assert first.weekday() == 0 and len(period.days()) == 7


def test_the_monthly_period_is_the_last_whole_calendar_month_in_local_time() -> None:
    assert Period.of(PeriodKind.MONTHLY, dt.date(2026, 11, 23), "Asia/Shanghai").label == "2026-10"
    january = Period.of(PeriodKind.MONTHLY, dt.date(2027, 1, 1), "Asia/Shanghai")
    assert (january.first_day, january.last_day, january.label) == (
        dt.date(2026, 12, 1),
        dt.date(2026, 12, 31),
        "2026-12",
    )
    assert NOVEMBER.start_ms == at(11, 1) and NOVEMBER.end_ms == at(12, 1)  # local midnights, +08:00
    assert NOVEMBER.start_ms == round(dt.datetime(2026, 10, 31, 16, tzinfo=dt.UTC).timestamp() * 1000)
    assert len(NOVEMBER.days()) == 30
    assert "November 2026" in NOVEMBER.title


def test_days_follow_the_local_clock_across_a_dst_change() -> None:
    march = Period.of(PeriodKind.MONTHLY, dt.date(2026, 4, 1), "Europe/Berlin")
    lengths = {(d.end_ms - d.start_ms) // HOUR for d in march.days()}
    assert lengths == {23, 24}  # 29 March 2026 has 23 hours


# -- the report model ---------------------------------------------------------------------------------


def test_districts_rank_by_on_time_closure_then_lighting_then_intact() -> None:
    report = november_report()
    ranking = [(s.rank, s.name) for s in report.districts]
    # jianghan and qiaokou: 100 % on time (qiaokou had nothing due: nothing late), lighting 99 %, intact 98 %
    # hongshan: 100 % on time, lighting 98 %; hanyang: 100 % on time, no lighting figure; wuchang: 50 %
    assert ranking == [(1, "jianghan"), (1, "qiaokou"), (3, "hongshan"), (4, "hanyang"), (5, "wuchang")]
    wuchang = report.districts[-1]
    assert (wuchang.closure.due, wuchang.closure.on_time, wuchang.closure.overdue_open) == (2, 1, 1)
    assert wuchang.closure.on_time_rate == 0.5


def test_another_ranking_order_is_a_setting() -> None:
    config = ReportConfig(ranking=("lighting", "on_time"))
    report = build_report(NOVEMBER, november_rates(), StubAlerts(november_alerts()), at(12, 2), config)
    assert [s.name for s in report.districts] == ["jianghan", "qiaokou", "wuchang", "hongshan", "hanyang"]


def test_nights_are_the_evenings_of_the_period() -> None:
    report = november_report()
    hongshan = next(s for s in report.districts if s.name == "hongshan")
    assert hongshan.rates.nights == 30  # 31 October's night (ended 1 November) is October's
    assert hongshan.rates.lighting_min == 0.90  # the dip of the 10th
    assert hongshan.rates.lighting_mean == pytest.approx(0.98)
    assert hongshan.rates.intact_mean == pytest.approx(0.96)
    # the points are asked for over the period shifted by 12 h: the night of 30 November ends on 1 December
    rates = november_rates()
    build_report(NOVEMBER, rates, StubAlerts([]), at(12, 2), ReportConfig())
    assert ("district", at(11, 1, 12), at(12, 1, 12)) in rates.asked
    assert report.trend[-1].date == dt.date(2026, 11, 30)
    assert report.trend[-1].rates.lighting_mean == pytest.approx(0.985)
    assert report.trend[9].rates.lighting_min == 0.95  # the city's dip on the 10th


def test_targets_and_the_city() -> None:
    report = november_report()
    targets = {t.metric: t for t in report.targets}
    assert targets["lighting_rate"].value == pytest.approx(0.985) and targets["lighting_rate"].met is False
    assert targets["intact_rate"].value == pytest.approx(0.97) and targets["intact_rate"].met is True
    # six cases due in November, five on time
    assert targets["on_time_closure_rate"].value == pytest.approx(5 / 6)
    assert targets["on_time_closure_rate"].met is False
    assert report.city.closure.due == sum(s.closure.due for s in report.districts)


def test_overdue_faults_include_the_backlog_of_earlier_periods() -> None:
    report = november_report()
    assert [a.subject for a in report.overdue] == ["old", "w2"]
    config = ReportConfig(overdue_lookback_days=30)
    short = build_report(NOVEMBER, november_rates(), StubAlerts(november_alerts()), at(12, 2), config)
    assert [a.subject for a in short.overdue] == ["w2"]


def test_the_running_month_is_reported_up_to_now() -> None:
    report = november_report(generated_ms=at(11, 10, 12))
    assert report.partial and report.as_of_ms == at(11, 10, 12)
    assert len(report.trend) == 10
    assert report.city.closure.due == 3  # w1, h1, h2: the others are due after the 10th
    assert [a.subject for a in report.overdue] == ["old"]
    with pytest.raises(ReportError, match="not begun"):
        november_report(generated_ms=at(10, 30))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ranking": ("speed",)}, "ranking key"),
        ({"ranking": ()}, "ranking"),
        ({"ranking": ("on_time", "on_time")}, "ranking"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"intact_target": 95.0}, "intact_target"),
        ({"closure_groups": ("severity",)}, "closure group"),
        ({"overdue_lookback_days": 0}, "overdue_lookback_days"),
    ],
)
def test_report_config_refuses_nonsense(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AlertConfigError, match=message):
        ReportConfig(**kwargs)  # type: ignore[arg-type]


# -- HTML ---------------------------------------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, css_class: str | None = None) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and (css_class is None or a.get("class") == css_class)]


def test_the_html_is_one_self_contained_page_with_both_charts_and_the_numbers() -> None:
    page = Page()
    page.feed(render_html(november_report()))
    page.close()
    text = " ".join(page.text)
    assert not page.having("script") and not page.having("link") and not page.having("img")
    assert [a["class"] for a in page.having("svg")] == ["bar-chart", "line-chart"]
    # bars: 5 districts x 3 rates, less hanyang's missing lighting and intact figures and qiaokou's
    # on-time closure rate (nothing was due there)
    assert len(page.having("rect", "bar")) == 12
    assert len(page.having("line", "target")) == 4  # 100 % and 95 % in each chart
    assert len(page.having("path", "line")) == 3
    assert len(page.having("text", "missing")) == 3  # ... are marked n/a
    # a point per day for lighting, intact and the on-time closure rate so far (a case fell due on the 4th)
    assert len(page.having("circle")) == 30 + 30 + 27
    for number in ("50.00 %", "98.50 %", "83.33 %", "97.00 %"):
        assert number in text
    for district in ("jianghan", "qiaokou", "hongshan", "hanyang", "wuchang"):
        assert district in text
    assert "Monthly bulletin November 2026" in text and "月通报" in text
    assert "lamp_failure:old:" in text  # the backlog's overdue fault
    # a road name from the registry is text, never markup
    assert "<b>Jiefang & 1</b>" in text and not page.having("b")
    ids = {a.get("id") for _, a in page.tags}
    assert {"table-targets", "table-districts", "table-trend", "table-overdue", "table-closure_crew"} <= ids


def test_charts_handle_missing_values_and_no_data() -> None:
    empty = bar_chart("nothing", [], [Series("lighting", (), "#000", 1.0)])
    assert "no data" in empty
    gaps = line_chart("gaps", ["a", "b", "c", "d"], [Series("x", (0.9, None, 0.95, 0.97), "#000")])
    assert gaps.count(" M") + gaps.count('"M') == 2  # the missing day breaks the line in two
    assert axis_floor([0.7582, 0.95]) == 70
    assert axis_floor([1.0]) == 90
    assert axis_floor([0.9]) == 80  # the lowest value stands above the floor
    assert axis_floor([0.0]) == 0


# -- CSV ----------------------------------------------------------------------------------------------


def test_every_csv_reads_back_as_its_table(tmp_path: Path) -> None:
    report = november_report()
    paths = write_report(report, tmp_path / "2026-11")
    assert paths[0].name == "report.html"
    tables = report_tables(report)
    assert [p.name for p in paths[1:]] == [f"{t.name}.csv" for t in tables]
    for table in tables:
        assert read_csv(tmp_path / "2026-11" / f"{table.name}.csv", table.columns) == table.rows
    raw = (tmp_path / "2026-11" / "districts.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: spreadsheets read it as UTF-8
    with (tmp_path / "2026-11" / "districts.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = {r["district"]: r for r in csv.DictReader(f)}
    assert rows["wuchang"]["rank"] == "5" and rows["wuchang"]["on_time_rate"] == "0.5"
    assert rows["hanyang"]["lighting_mean"] == ""  # no figure is an empty cell
    assert rows["city"]["rank"] == "" and rows["city"]["due"] == "6"
    with (tmp_path / "2026-11" / "overdue.csv").open(encoding="utf-8-sig", newline="") as f:
        overdue = list(csv.DictReader(f))
    assert overdue[0]["deadline"] == "2026-09-02T00:00:00+08:00"
    assert float(overdue[0]["overdue_hours"]) == pytest.approx((at(12, 1) - at(9, 2)) / HOUR)


def test_csv_cells_of_every_kind_round_trip() -> None:
    columns = tuple(Column(k.value, k.value, k) for k in Kind)
    when = dt.datetime(2026, 11, 3, 8, 0, 0, 123000, tzinfo=SHANGHAI)
    rows = (
        ('a, "quoted"\nline', 3, 0.758230, 12.5, when, dt.date(2026, 11, 3)),
        ("", None, None, None, None, None),
    )
    table = dataclasses.replace(report_tables(november_report())[0], columns=columns, rows=rows)
    assert from_csv(to_csv(table), columns) == rows
    with pytest.raises(ReportError, match="header"):
        from_csv(to_csv(table), columns[:2])


# -- InfluxDB and the command (integration) -----------------------------------------------------------


def _kpi(measurement: str, scope: str, ids: tuple[str, ...], ts_ms: int, **fields: list[float]) -> list[str]:
    table = KpiTable(measurement, scope, ids, {k: np.array(v) for k, v in fields.items()}, ts_ms)
    return list(kpi_lines(table, "all"))


def _load_november(url: str, db: str) -> None:
    """Two nights of kpi_night / kpi_check as the analytics worker writes them, and decoys."""
    from ingest.influx import InfluxTarget, InfluxV1

    lines = []
    for day in (5, 6):
        off, late_check = at(11, day + 1, 6, 30), at(11, day + 1, 2)
        lines += _kpi(
            "kpi_night",
            "district",
            ("wuchang", "hongshan"),
            off,
            lighting_rate_min=[0.90, 0.97],
            lighting_rate_mean=[0.95, 0.99],
            checks=[3, 3],
        )
        lines += _kpi(
            "kpi_night", "city", ("city",), off, lighting_rate_min=[0.92], lighting_rate_mean=[0.97]
        )
        for check in (at(11, day, 22), late_check):
            lines += _kpi(
                "kpi_check",
                "district",
                ("wuchang", "hongshan"),
                check,
                intact_rate=[0.96, 0.99],
                lighting_rate=[0.95, 0.99],
                due=[100, 100],
            )
            lines += _kpi("kpi_check", "city", ("city",), check, intact_rate=[0.975])
        # decoys: another scope, and a check where nothing was counted (intact rate NaN: left out)
        lines += _kpi(
            "kpi_night", "road", ("road-1",), off, lighting_rate_min=[0.1], lighting_rate_mean=[0.1]
        )
        lines += _kpi("kpi_check", "district", ("wuchang",), at(11, day, 23), intact_rate=[math.nan], due=[0])
    # the night of 31 October, and a point after the period: neither is November's
    lines += _kpi(
        "kpi_night", "district", ("wuchang",), at(11, 1, 6), lighting_rate_min=[0.2], lighting_rate_mean=[0.2]
    )
    lines += _kpi(
        "kpi_night",
        "district",
        ("wuchang",),
        at(12, 1, 12),
        lighting_rate_min=[0.3],
        lighting_rate_mean=[0.3],
    )
    with InfluxV1(InfluxTarget(url=url, db=db)) as influx:
        influx.write("\n".join(lines).encode())


@pytest.mark.integration
def test_the_rate_source_reads_nightly_points_of_one_scope_from_influxdb(influx_db: InfluxDatabase) -> None:
    from analytics.reports.influx import InfluxRateSource
    from ingest.influx import InfluxTarget, InfluxV1

    _load_november(influx_db.url, influx_db.db)
    with InfluxV1(InfluxTarget(url=influx_db.url, db=influx_db.db)) as influx:
        source = InfluxRateSource(influx)
        rows = source.nightly("district", at(11, 1, 12), at(12, 1, 12))
        assert {(r.scope_id, r.partition) for r in rows} == {("wuchang", "all"), ("hongshan", "all")}
        nights = [r for r in rows if r.lighting_rate_mean is not None]
        checks = [r for r in rows if r.intact_rate is not None]
        assert len(nights) == 4 and len(checks) == 8 and len(rows) == 12  # the NaN check is not a row
        wuchang = [r for r in nights if r.scope_id == "wuchang"]
        assert [(r.at_ms, r.lighting_rate_min, r.lighting_rate_mean) for r in wuchang] == [
            (at(11, 6, 6, 30), 0.90, 0.95),
            (at(11, 7, 6, 30), 0.90, 0.95),
        ]
        (city,) = {r.scope_id for r in source.nightly("city", at(11, 1, 12), at(12, 1, 12))}
        assert city == "city"
        with pytest.raises(ValueError, match="road"):
            source.nightly("road", 0, 1)
        report = build_report(NOVEMBER, source, StubAlerts(november_alerts()), at(12, 2), ReportConfig())
    hongshan = next(s for s in report.districts if s.name == "hongshan")
    assert (hongshan.rates.nights, hongshan.rates.lighting_mean, hongshan.rates.intact_mean) == (
        2,
        0.99,
        0.99,
    )
    assert report.city.rates.intact_mean == pytest.approx(0.975)


@pytest.mark.integration
def test_citywatch_report_writes_the_monthly_bulletin(
    influx_db: InfluxDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analytics.alerts.policy import Changes
    from analytics.alerts.store import AlertStore
    from citywatch.cli import app

    _load_november(influx_db.url, influx_db.db)
    db_url = f"sqlite:///{tmp_path / 'alerts.db'}"
    with AlertStore(db_url) as store:
        store.apply(Changes(alerts=tuple(november_alerts())))
    monkeypatch.setenv("CITYWATCH_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CITYWATCH_INFLUX_URL", influx_db.url)
    monkeypatch.setenv("CITYWATCH_INFLUX_DB", influx_db.db)
    monkeypatch.setenv("CITYWATCH_ALERTS_DB_URL", db_url)
    result = CliRunner().invoke(app, ["report", "monthly", "--end", "2026-12-01"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "var" / "reports" / "2026-11"
    assert str(folder / "report.html") in result.output.splitlines()
    assert "On-time closure rate: 83.33 %" in result.output
    with (folder / "districts.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = {r["district"]: r for r in csv.DictReader(f)}
    assert rows["hongshan"]["lighting_mean"] == "0.99" and rows["wuchang"]["on_time_rate"] == "0.5"
    assert (folder / "overdue.csv").read_text(encoding="utf-8-sig").count("lamp_failure:") == 2

    bad = CliRunner().invoke(app, ["report", "weekly", "--end", "23 Nov"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_report_settings_default_to_the_analytics_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from analytics.rates import RateConfig
    from analytics.reports.settings import ReportSettings
    from analytics.schedule import ScheduleConfig

    monkeypatch.setenv("CITYWATCH_REPORT_CLOSURE__ON_TIME_TARGET", "0.9")
    monkeypatch.setenv("CITYWATCH_REPORT_RANKING", '["lighting", "on_time"]')
    config = ReportSettings().config(RateConfig(intact_target=0.9), ScheduleConfig(timezone="+08:00"))
    assert (config.lighting_target, config.intact_target, config.timezone) == (1.0, 0.9, "+08:00")
    assert config.closure.on_time_target == 0.9 and config.ranking == ("lighting", "on_time")
    monkeypatch.setenv("CITYWATCH_REPORT_CLOSURE__ON_TIME_TARGET", "95")
    with pytest.raises(ValidationError, match="on_time_target"):
        ReportSettings()
