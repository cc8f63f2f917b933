"""Ingest self-metrics: Prometheus counters, and a snapshot written to InfluxDB and the live status."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from devices.contract import RejectReason


@dataclass(frozen=True, slots=True)
class Snapshot:
    received: int
    written: int
    rejected: int
    spooled: int
    replayed: int
    spool_bytes: int
    lag_s: float
    rejected_by_reason: dict[str, int]


class IngestMetrics:
    """One per worker, each with its own registry (several workers may share a process in tests)."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.registry = CollectorRegistry()
        ns = "citywatch_ingest"
        self.messages = Counter(f"{ns}_messages", "MQTT messages received", registry=self.registry)
        self.received = Counter(
            f"{ns}_readings_received", "readings decoded or rejected", registry=self.registry
        )
        self.written = Counter(
            f"{ns}_readings_written", "readings stored in InfluxDB", registry=self.registry
        )
        self.rejected = Counter(
            f"{ns}_readings_rejected", "readings rejected, by reason", ["reason"], registry=self.registry
        )
        self.spooled = Counter(f"{ns}_readings_spooled", "readings put in the spool", registry=self.registry)
        self.replayed = Counter(
            f"{ns}_readings_replayed", "readings replayed from the spool", registry=self.registry
        )
        self.spool_bytes = Gauge(f"{ns}_spool_bytes", "bytes waiting in the spool", registry=self.registry)
        self.lag = Histogram(
            f"{ns}_lag_seconds",
            "device timestamp to durable, oldest reading of each batch",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        self.last_lag_s = 0.0
        for reason in RejectReason:
            self.rejected.labels(reason.value)

    def reject(self, reason: RejectReason, count: int = 1) -> None:
        self.rejected.labels(reason.value).inc(count)

    def snapshot(self) -> Snapshot:
        by_reason = {
            sample.labels["reason"]: int(sample.value)
            for metric in self.rejected.collect()
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.value
        }
        return Snapshot(
            received=self._value("readings_received_total"),
            written=self._value("readings_written_total"),
            rejected=sum(by_reason.values()),
            spooled=self._value("readings_spooled_total"),
            replayed=self._value("readings_replayed_total"),
            spool_bytes=self._value("spool_bytes"),
            lag_s=self.last_lag_s,
            rejected_by_reason=by_reason,
        )

    def _value(self, name: str) -> int:
        return int(self.registry.get_sample_value(f"citywatch_ingest_{name}") or 0)

    def line(self, ts_ms: int) -> str:
        """The snapshot as one InfluxDB point (measurement ``citywatch_ingest``, tag ``worker``)."""
        s = self.snapshot()
        reasons = "".join(f",rejected_{k}={v}i" for k, v in sorted(s.rejected_by_reason.items()))
        return (
            f"citywatch_ingest,worker={self.worker} received={s.received}i,written={s.written}i,"
            f"rejected={s.rejected}i,spooled={s.spooled}i,replayed={s.replayed}i,"
            f"spool_bytes={s.spool_bytes}i,lag_s={s.lag_s!r}{reasons} {ts_ms}"
        )
