"""Notifications reach people and control-room screens: e-mail, webhooks, MQTT; retries; storms; restarts.

The pure tier drives ``OutboxSender`` with an in-memory outbox and recording couriers; the integration
tier delivers for real: a local SMTP server (aiosmtpd), a local HTTP server, the test Mosquitto, and the
real alert store on a SQLite file.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from analytics.alerts import AlertConfigError, DeliveryError
from analytics.alerts.digest import DigestConfig
from analytics.alerts.model import Alert, AlertState, Notification, NotificationKind, Severity
from analytics.alerts.notify import (
    DELIVERY_BACKOFF,
    AppriseCourier,
    Courier,
    MqttCourier,
    OutboxConfig,
    OutboxSender,
    SendResult,
)
from analytics.alerts.policy import Changes
from analytics.alerts.store import AlertStore, OutboxStatus
from citywatch.localstack import LocalMosquitto, free_port
from devices.broker import BrokerAddress
from ingest.retry import Backoff
from tests.waiting import wait_until

T0 = 1_750_000_200_000  # on a 5 min boundary
SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
TIMEOUT_S = 20.0


def notification(
    i: int,
    *,
    to: tuple[str, ...] = ("wang",),
    at: int = T0,
    severity: Severity = Severity.ORDINARY,
    crew: str = "crew-east",
) -> Notification:
    alert_id = f"lamp_dark:LMP-{i:04d}:{at}"
    return Notification(
        id=f"{alert_id}:opened:0",
        kind=NotificationKind.OPENED,
        recipients=to,
        title=f"Lamp dark: LMP-{i:04d} on Luoyu Road",
        body=f"LMP-{i:04d}, Luoyu Road, grid G-01, hongshan: active power 0.4 W below 18 W. 路灯不亮",
        alert_ids=(alert_id,),
        created_ms=at,
        severity=severity,
        attributes={"crew": crew, "district": "hongshan", "deadline_ms": str(at + 24 * HOUR)},
    )


# --- the pure tier: an in-memory outbox and recording couriers ----------------------------------------


@dataclass
class Row:
    note: Notification
    next_attempt_ms: int
    status: OutboxStatus = OutboxStatus.PENDING
    attempts: int = 0
    last_error: str = ""
    digest_id: str | None = None


class MemoryOutbox:
    """The outbox half of ``AlertStore`` in memory, with the same rules (only pending rows move)."""

    def __init__(self, notes: Iterable[Notification] = ()) -> None:
        self.rows: dict[str, Row] = {}
        self.add(notes)

    def add(self, notes: Iterable[Notification]) -> None:
        for note in notes:
            self.rows.setdefault(note.id, Row(note, next_attempt_ms=note.created_ms))

    def apply(self, changes: Changes) -> None:
        self.add(changes.notifications)

    def pending_notifications(self, now_ms: int, limit: int) -> list[Notification]:
        due = [
            r for r in self.rows.values() if r.status is OutboxStatus.PENDING and r.next_attempt_ms <= now_ms
        ]
        due.sort(key=lambda r: (r.next_attempt_ms, r.note.created_ms, r.note.id))
        return [r.note for r in due[:limit]]

    def _pending(self, ids: Iterable[str]) -> list[Row]:
        return [self.rows[i] for i in ids if self.rows[i].status is OutboxStatus.PENDING]

    def mark_sent(self, ids: Iterable[str], at_ms: int) -> int:
        rows = self._pending(ids)
        for row in rows:
            row.status, row.attempts = OutboxStatus.SENT, row.attempts + 1
        return len(rows)

    def mark_retry(self, notification_id: str, error: str, next_attempt_ms: int) -> int:
        for row in self._pending([notification_id]):
            row.attempts, row.last_error, row.next_attempt_ms = row.attempts + 1, error, next_attempt_ms
        return 1

    def mark_failed(self, notification_id: str, error: str) -> int:
        for row in self._pending([notification_id]):
            row.status, row.attempts, row.last_error = OutboxStatus.FAILED, row.attempts + 1, error
        return 1

    def mark_digested(self, ids: Iterable[str], digest_id: str) -> int:
        rows = self._pending(ids)
        for row in rows:
            row.status, row.digest_id = OutboxStatus.DIGESTED, digest_id
        return len(rows)

    def delivery(self, notification_id: str) -> Row | None:
        return self.rows.get(notification_id)

    def statuses(self) -> Counter[OutboxStatus]:
        return Counter(r.status for r in self.rows.values())


@dataclass
class RecordingCourier:
    """Delivers by remembering; ``fails(notification, url)`` returns a reason to fail instead."""

    fails: Callable[[Notification, str], str | None] = lambda _n, _u: None
    delivered: list[tuple[str, str]] = field(default_factory=list)  # (notification id, url)
    notes: list[Notification] = field(default_factory=list)

    def deliver(self, notification: Notification, recipient_urls: tuple[str, ...]) -> None:
        url = recipient_urls[0] if recipient_urls else "control-room"
        reason = self.fails(notification, url)
        if reason:
            raise DeliveryError(reason)
        self.delivered.append((notification.id, url))
        self.notes.append(notification)


CONTACTS = {
    "wang": ("mailto://wang@example.test", "json://hooks.example.test/wang"),
    "li": ("mailto://li@example.test",),
    "zhao": ("mailto://zhao@example.test",),
}


def outbox_sender(
    outbox: Any,
    courier: Courier,
    *,
    control_room: tuple[Courier, ...] = (),
    contacts: Mapping[str, tuple[str, ...]] | None = None,
    max_attempts: int = 8,
    alert_lookup: Callable[[str], Alert] | None = None,
) -> OutboxSender:
    book = CONTACTS if contacts is None else contacts
    return OutboxSender(
        outbox,
        [courier],
        lambda person: book.get(person, ()),
        DELIVERY_BACKOFF,
        DigestConfig(),
        control_room=control_room,
        config=OutboxConfig(max_attempts=max_attempts),
        alert_lookup=alert_lookup,
        rand=lambda: 0.5,
    )


def test_due_notifications_go_to_every_url_of_every_recipient_and_are_marked_sent() -> None:
    note = notification(1, to=("wang", "li"))
    outbox = MemoryOutbox([note])
    courier = RecordingCourier()

    result = outbox_sender(outbox, courier).send_due(T0)

    assert result == SendResult(sent=1, retried=0, failed=0)
    assert sorted(url for _, url in courier.delivered) == sorted(CONTACTS["wang"] + CONTACTS["li"])
    assert outbox.rows[note.id].status is OutboxStatus.SENT
    assert outbox_sender(outbox, courier).send_due(T0 + MIN) == SendResult(0, 0, 0)  # a restart: nothing


def test_a_failed_delivery_waits_for_the_backoff_and_then_goes_out() -> None:
    note = notification(1)
    outbox = MemoryOutbox([note])
    down = {"up": False}
    courier = RecordingCourier(fails=lambda _n, url: None if down["up"] or "json" not in url else "HTTP 500")
    sender = outbox_sender(outbox, courier)

    assert sender.send_due(T0) == SendResult(sent=0, retried=1, failed=0)
    row = outbox.rows[note.id]
    first_delay = DELIVERY_BACKOFF.next_delay(1, 0.5)
    assert row.next_attempt_ms == T0 + round(first_delay * 1000)
    assert "HTTP 500" in row.last_error
    assert sender.send_due(row.next_attempt_ms - 1) == SendResult(0, 0, 0)  # not due yet

    down["up"] = True
    assert sender.send_due(row.next_attempt_ms) == SendResult(sent=1, retried=0, failed=0)
    # the e-mail went out once: the retry only repeated the webhook that had failed
    assert Counter(url for _, url in courier.delivered) == Counter(CONTACTS["wang"])


def test_retries_back_off_to_the_cap_and_give_up_after_max_attempts() -> None:
    note = notification(1, to=("li",))
    outbox = MemoryOutbox([note])
    sender = outbox_sender(outbox, RecordingCourier(fails=lambda _n, _u: "relay down"), max_attempts=5)

    now, delays, results = T0, [], []
    for _ in range(5):
        results.append(sender.send_due(now))
        row = outbox.rows[note.id]
        delays.append(row.next_attempt_ms - now)
        now = row.next_attempt_ms

    assert results == [SendResult(0, 1, 0)] * 4 + [SendResult(0, 0, 1)]
    assert delays[:4] == [round(DELIVERY_BACKOFF.next_delay(n, 0.5) * 1000) for n in range(1, 5)]
    assert delays[0] < delays[1] < delays[2] < delays[3]
    assert outbox.rows[note.id].status is OutboxStatus.FAILED
    assert outbox.rows[note.id].attempts == 5


def test_the_control_room_is_retried_without_repeating_the_crew() -> None:
    note = notification(1, to=("li",), severity=Severity.EMERGENCY)
    outbox = MemoryOutbox([note])
    crew = RecordingCourier()
    screens_up = {"up": False}
    screens = RecordingCourier(fails=lambda _n, _u: None if screens_up["up"] else "no PUBACK")
    sender = outbox_sender(outbox, crew, control_room=(screens,))

    assert sender.send_due(T0).retried == 1
    screens_up["up"] = True
    assert sender.send_due(T0 + HOUR).sent == 1

    assert crew.delivered == [(note.id, CONTACTS["li"][0])]
    assert screens.delivered == [(note.id, "control-room")]


def test_a_person_without_contact_urls_is_skipped_and_the_rest_still_get_it() -> None:
    note = notification(1, to=("nobody", "li"))
    outbox = MemoryOutbox([note])
    courier = RecordingCourier()

    assert outbox_sender(outbox, courier).send_due(T0) == SendResult(sent=1, retried=0, failed=0)
    assert courier.delivered == [(note.id, CONTACTS["li"][0])]


def test_a_storm_goes_out_as_one_stored_digest_that_retries_like_any_notification() -> None:
    storm = [notification(i, at=T0 + i * SEC) for i in range(50)]
    outbox = MemoryOutbox(storm)
    up = {"up": False}
    courier = RecordingCourier(fails=lambda _n, _u: None if up["up"] else "SMTP 451")
    sender = outbox_sender(outbox, courier, contacts={"wang": ("mailto://wang@example.test",)})

    first = sender.send_due(T0 + MIN)
    assert first == SendResult(sent=0, retried=1, failed=0, digested=50)
    [digest_row] = [r for r in outbox.rows.values() if r.note.kind is NotificationKind.DIGEST]
    assert outbox.statuses() == Counter({OutboxStatus.DIGESTED: 50, OutboxStatus.PENDING: 1})
    assert {r.digest_id for r in outbox.rows.values() if r.status is OutboxStatus.DIGESTED} == {
        digest_row.note.id
    }

    up["up"] = True
    assert sender.send_due(digest_row.next_attempt_ms) == SendResult(sent=1, retried=0, failed=0)
    [sent] = courier.notes
    assert sent.id == digest_row.note.id
    assert sent.title == "50 alerts opened in crew crew-east"


def test_digests_name_the_crew_from_the_alerts_in_the_store() -> None:
    storm = [notification(i, crew="") for i in range(4)]
    storm = [
        Notification(n.id, n.kind, n.recipients, n.title, n.body, n.alert_ids, n.created_ms, n.severity)
        for n in storm
    ]  # no attributes: a notification made before the policy wrote them
    courier = RecordingCourier()

    def lookup(alert_id: str) -> Alert:
        return Alert(
            id=alert_id,
            key=alert_id.rsplit(":", 1)[0],
            rule="lamp_dark",
            family="streetlight",
            subject_kind="lamp",
            subject=alert_id.split(":")[1],
            district="hongshan",
            road="Luoyu Road",
            grid_cell="G-01",
            crew="crew-west",
            severity=Severity.ORDINARY,
            state=AlertState.OPEN,
            opened_ms=T0,
            deadline_ms=T0 + 24 * HOUR,
            explanation="",
        )

    outbox_sender(MemoryOutbox(storm), courier, alert_lookup=lookup).send_due(T0)

    assert {n.title for n in courier.notes} == {"4 alerts opened in crew crew-west"}


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=5),
    failures=st.lists(st.booleans(), max_size=80),
)
def test_whatever_fails_nobody_gets_a_message_twice_and_the_outbox_drains(
    sizes: list[int], failures: list[bool]
) -> None:
    people = ("wang", "li", "zhao")
    # a batch of alerts opens every 2 minutes: several batches share a 5 min window and arrive while
    # earlier notifications are still being retried
    batches = [
        [
            notification(10 * b + i, to=people[: 1 + (b + i) % 3], at=T0 + b * 2 * MIN + i * SEC)
            for i in range(size)
        ]
        for b, size in enumerate(sizes)
    ]
    outbox = MemoryOutbox()
    plan = iter(failures)
    courier = RecordingCourier(fails=lambda _n, _u: "down" if next(plan, False) else None)
    sender = outbox_sender(outbox, courier, max_attempts=4)

    for minute in range(120):  # a pass every 30 s
        now = T0 + minute * MIN // 2
        outbox.add(n for batch in batches for n in batch if n.created_ms <= now)
        sender.send_due(now)
        if now > T0 + len(sizes) * 2 * MIN and OutboxStatus.PENDING not in outbox.statuses():
            break

    assert len(outbox.rows) >= sum(sizes)
    assert OutboxStatus.PENDING not in outbox.statuses()
    # nobody hears of the same alert twice at the same address, whether alone or in a digest
    heard = Counter(
        (url, alert_id)
        for (_, url), n in zip(courier.delivered, courier.notes, strict=True)
        for alert_id in n.alert_ids
    )
    assert all(count == 1 for count in heard.values())
    assert all(r.attempts == 4 for r in outbox.rows.values() if r.status is OutboxStatus.FAILED)


def test_outbox_settings_are_checked() -> None:
    with pytest.raises(AlertConfigError):
        OutboxConfig(max_attempts=0)
    with pytest.raises(AlertConfigError):
        OutboxConfig(batch=0)
    with pytest.raises(AlertConfigError, match="backoff"):
        OutboxSender(MemoryOutbox(), [], lambda _p: (), Backoff(base_s=60.0, cap_s=10.0))
    with pytest.raises(AlertConfigError):
        AppriseCourier(timeout_s=0)


def test_apprise_refuses_a_url_it_does_not_know_with_a_delivery_error() -> None:
    with pytest.raises(DeliveryError, match=r"cannot use the URL\(s\) nosuchservice://"):
        AppriseCourier().deliver(notification(1), ("nosuchservice://secret@host",))


# --- the integration tier: real servers on 127.0.0.1 ----------------------------------------------------


class MailSink:
    """An SMTP server (aiosmtpd) on a free loopback port that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def url(self, to: str) -> str:
        """A crew member's apprise URL for this server: plain SMTP, no login, no TLS."""
        return f"mailto://127.0.0.1:{self.controller.port}?from=alerts@citywatch.test&to={to}"

    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        with self._lock:
            return list(self.received)


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    sink = MailSink()
    sink.controller.start()
    try:
        yield sink
    finally:
        sink.controller.stop()


class WebhookSink:
    """An HTTP server on a free loopback port; answers 500 to the first ``fail_first`` requests."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.answers: list[int] = []
        self.fail_first = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = 500 if len(sink.answers) < sink.fail_first else 200
                sink.answers.append(status)
                if status == 200:
                    sink.posts.append(orjson.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, name="webhook-sink", daemon=True
        )

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def webhook_sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookSink]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # a loopback server is never reached through a proxy
    sink = WebhookSink()
    sink.thread.start()
    try:
        yield sink
    finally:
        sink.server.shutdown()
        sink.server.server_close()
        sink.thread.join(TIMEOUT_S)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertStore]:
    with AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}") as opened:
        yield opened


def alert_of(note: Notification, crew: str = "crew-east") -> Alert:
    alert_id = note.alert_ids[0]
    return Alert(
        id=alert_id,
        key=alert_id.rsplit(":", 1)[0],
        rule="lamp_dark",
        family="streetlight",
        subject_kind="lamp",
        subject=alert_id.split(":")[1],
        district="hongshan",
        road="Luoyu Road",
        grid_cell="G-01",
        crew=crew,
        severity=note.severity,
        state=AlertState.OPEN,
        opened_ms=note.created_ms,
        deadline_ms=note.created_ms + 24 * HOUR,
        explanation=note.body,
    )


def real_sender(
    store: AlertStore,
    contacts: Mapping[str, tuple[str, ...]],
    *,
    control_room: tuple[Courier, ...] = (),
    backoff: Backoff = DELIVERY_BACKOFF,
) -> OutboxSender:
    return OutboxSender(
        store,
        [AppriseCourier(timeout_s=TIMEOUT_S)],
        lambda person: contacts.get(person, ()),
        backoff,
        DigestConfig(),
        control_room=control_room,
        alert_lookup=store.get,
        rand=lambda: 0.5,
    )


@pytest.mark.integration
def test_an_opened_alert_reaches_the_crew_by_email_and_webhook_once(
    store: AlertStore, mail_sink: MailSink, webhook_sink: WebhookSink
) -> None:
    note = notification(7)
    store.apply(Changes(alerts=(alert_of(note),), notifications=(note,)))
    contacts = {"wang": (mail_sink.url("wang@crew-east.test"), webhook_sink.url)}

    assert real_sender(store, contacts).send_due(T0 + SEC) == SendResult(sent=1, retried=0, failed=0)

    [(to, message)] = mail_sink.messages()
    assert to == ["wang@crew-east.test"]
    assert message["Subject"] == note.title
    assert message["From"] == "alerts@citywatch.test"
    body = message.get_body(("plain",))
    assert body is not None
    assert "LMP-0007, Luoyu Road, grid G-01" in body.get_content()
    assert "路灯不亮" in body.get_content()
    [post] = webhook_sink.posts
    assert (post["title"], post["message"]) == (note.title, note.body)
    delivery = store.delivery(note.id)
    assert delivery is not None
    assert delivery.status is OutboxStatus.SENT

    # a restart (a new sender on the same database) sends nothing again
    assert real_sender(store, contacts).send_due(T0 + HOUR) == SendResult(0, 0, 0)
    assert len(mail_sink.messages()) == 1
    assert len(webhook_sink.posts) == 1


@pytest.mark.integration
def test_a_webhook_answering_500_is_retried_with_backoff_and_later_succeeds(
    store: AlertStore, mail_sink: MailSink, webhook_sink: WebhookSink
) -> None:
    webhook_sink.fail_first = 2
    note = notification(8)
    store.apply(Changes(notifications=(note,)))
    contacts = {"wang": (mail_sink.url("wang@crew-east.test"), webhook_sink.url)}
    sender = real_sender(store, contacts)

    now = T0
    outcomes = []
    for _ in range(3):
        outcomes.append(sender.send_due(now))
        delivery = store.delivery(note.id)
        assert delivery is not None
        now = delivery.next_attempt_ms

    assert outcomes == [SendResult(0, 1, 0), SendResult(0, 1, 0), SendResult(1, 0, 0)]
    assert webhook_sink.answers == [500, 500, 200]
    assert len(mail_sink.messages()) == 1  # the e-mail is not repeated while the webhook is retried
    delivery = store.delivery(note.id)
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == (OutboxStatus.SENT, 3)
    assert "500" in delivery.last_error


@pytest.mark.integration
def test_an_unreachable_webhook_fails_with_apprises_reason() -> None:
    closed = f"json://127.0.0.1:{free_port()}/hook"

    with pytest.raises(DeliveryError, match="JSON") as caught:
        AppriseCourier(timeout_s=TIMEOUT_S).deliver(notification(1), (closed,))

    assert "onnection" in str(caught.value)


@pytest.mark.integration
def test_a_storm_of_fifty_alerts_for_one_crew_is_one_digest_email_and_an_emergency_stands_alone(
    store: AlertStore, mail_sink: MailSink
) -> None:
    storm = [notification(i, at=T0 + i * 100) for i in range(50)]
    emergency = notification(99, at=T0 + 30 * SEC, severity=Severity.EMERGENCY)
    notes = (*storm, emergency)
    store.apply(Changes(alerts=tuple(alert_of(n) for n in notes), notifications=notes))
    contacts = {"wang": (mail_sink.url("wang@crew-east.test"),)}

    result = real_sender(store, contacts).send_due(T0 + MIN)

    assert result == SendResult(sent=2, retried=0, failed=0, digested=50)
    subjects = [message["Subject"] for _, message in mail_sink.messages()]
    assert subjects == [emergency.title, "50 alerts opened in crew crew-east"]  # the emergency first
    digest_mail = mail_sink.messages()[1][1].get_body(("plain",))
    assert digest_mail is not None
    assert "LMP-0000" in digest_mail.get_content()
    statuses = Counter(
        getattr(store.delivery(n.id), "status", None) for n in storm
    )  # every one of the fifty is folded into the digest
    assert statuses == Counter({OutboxStatus.DIGESTED: 50})
    assert real_sender(store, contacts).send_due(T0 + HOUR) == SendResult(0, 0, 0)
    assert len(mail_sink.messages()) == 2


@pytest.fixture
def alerts_screen(mosquitto: LocalMosquitto) -> Iterator[list[tuple[str, dict[str, Any], int]]]:
    """A control-room screen subscribed to cw/v1/alerts/#: what it received (topic, document, qos)."""
    received: list[tuple[str, dict[str, Any], int]] = []
    subscribed = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="screen")
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe("cw/v1/alerts/#", qos=1)
    client.on_subscribe = lambda _c, _u, _m, _r, _p: subscribed.set()
    client.on_message = lambda _c, _u, m: received.append((m.topic, orjson.loads(m.payload), m.qos))
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        wait_until(subscribed.is_set, TIMEOUT_S, "the screen's SUBACK")
        yield received
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.integration
def test_the_control_room_screen_receives_each_notification_over_mqtt(
    store: AlertStore,
    mail_sink: MailSink,
    mosquitto: LocalMosquitto,
    alerts_screen: list[tuple[str, dict[str, Any], int]],
) -> None:
    emergency = notification(3, severity=Severity.EMERGENCY)
    ordinary = notification(4, at=T0 + SEC)
    store.apply(Changes(notifications=(emergency, ordinary)))
    contacts = {"wang": (mail_sink.url("wang@crew-east.test"),)}

    with MqttCourier(BrokerAddress.from_url(mosquitto.url), ack_timeout=TIMEOUT_S) as screens:
        result = real_sender(store, contacts, control_room=(screens,)).send_due(T0 + MIN)

    assert result == SendResult(sent=2, retried=0, failed=0)
    wait_until(lambda: len(alerts_screen) == 2, TIMEOUT_S, "both notifications on the screen")
    topic, document, qos = alerts_screen[0]
    assert (topic, qos) == ("cw/v1/alerts/emergency", 1)
    assert document == {
        "id": emergency.id,
        "kind": "opened",
        "severity": "emergency",
        "title": emergency.title,
        "body": emergency.body,
        "alert_ids": list(emergency.alert_ids),
        "created_ms": emergency.created_ms,
    }
    assert alerts_screen[1][0] == "cw/v1/alerts/ordinary"
    assert len(mail_sink.messages()) == 2


@pytest.mark.integration
def test_publishing_to_a_broker_that_went_away_is_a_delivery_error(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        broker = LocalMosquitto(tmp_path / "mosquitto")
        broker.start()
        stack.callback(broker.stop)
        screens = stack.enter_context(MqttCourier(BrokerAddress.from_url(broker.url), ack_timeout=1.0))
        broker.stop()

        with pytest.raises(DeliveryError):
            screens.deliver(notification(1, severity=Severity.EMERGENCY))
