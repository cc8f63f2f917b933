"""Delivery of the notification outbox: apprise to people, MQTT to control-room screens, with retries.

``OutboxSender.send_due(now_ms)`` is one pass: read the due notifications from the outbox, collapse storms
(``analytics.alerts.digest``), deliver each through the couriers, and record the outcome (sent, retry
later with backoff, failed after ``max_attempts``). The loop that calls it every few seconds is the
service's; nothing here sleeps.

Couriers (``Courier.deliver(notification, recipient_urls)``, raising ``DeliveryError``):

- ``AppriseCourier``: one person's apprise URLs, plain text, the notification's title. URLs that work for
  crews (apprise 2.x)::

      mailto://user:password@smtp.example.org?to=crew@example.org   e-mail (mailtos:// for TLS)
      mailto://relay.local:2525?from=alerts@city.test&to=crew@city.test   plain SMTP relay, no login
                      (mailto:// to a host apprise has no template for is plain SMTP; add mode=starttls)
      json://host:port/path, form://host:port/path                  webhooks (POST; jsons://, forms:// TLS)
      wecombot://{key}  or the bot's https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=... URL  WeCom
      dingtalk://{token}/  or  dingtalk://{secret}@{token}/ (signed)  DingTalk group robot
      feishu://{token}  (Feishu group bot),  lark://{token}  (Lark)

  DingTalk's and Feishu's own https webhook URLs are NOT recognised by apprise: write the token form.
- ``MqttCourier``: a JSON document on ``cw/v1/alerts/<severity>`` at QoS 1, waiting for the PUBACK.

Who gets what: each recipient (a person id) gets the notification at each of their URLs through the
person couriers (one URL per call); the control-room couriers get it once per notification. A channel
(a person's URL, a control-room courier) that succeeded is not repeated when another channel's failure
makes the notification retry (within this process; after a restart a partly delivered notification may
reach someone twice: delivery is at least once, a sent notification is never sent again). A recipient
without any URL is skipped with a warning: that is a contacts problem, not one a retry fixes. MQTT
consumers should de-duplicate by ``id``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import orjson
import paho.mqtt.client as mqtt

from analytics.alerts import AlertConfigError, AlertError, DeliveryError
from analytics.alerts.digest import DigestConfig, collapse
from analytics.alerts.model import Alert, Notification, NotificationKind, Severity
from analytics.alerts.policy import Changes
from devices.broker import BrokerAddress
from devices.mqtt_client import new_client
from devices.topics import ROOT
from ingest.retry import Backoff

with warnings.catch_warnings():
    # apprise's PGP support imports the stdlib's deprecated imghdr (removed in 3.13, apprise shims it
    # there). Load every plugin now, under this narrow filter, so the warning cannot surface later in
    # the middle of a delivery (tests run with warnings as errors).
    warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)
    import apprise
    from apprise.manager_plugins import NotificationManager

    NotificationManager().load_modules()  # type: ignore[no-untyped-call]

log = logging.getLogger(__name__)

ALERTS_TOPIC = f"{ROOT}/alerts"  # + "/<severity>": what control-room screens subscribe to

# CHOICE: first retry after ~30 s, doubling, at most 30 min apart: an SMTP relay or a messenger's
# webhook that is down for maintenance is usually back within minutes; jitter spreads the retries.
DELIVERY_BACKOFF = Backoff(base_s=30.0, factor=2.0, cap_s=1800.0, jitter=0.5)


class Courier(Protocol):
    def deliver(self, notification: Notification, recipient_urls: tuple[str, ...]) -> None:
        """Deliver or raise ``DeliveryError`` (the sender retries)."""


class Delivered(Protocol):
    @property
    def attempts(self) -> int: ...


class Outbox(Protocol):
    """What the sender needs from the store (``analytics.alerts.store.AlertStore`` has all of it)."""

    def pending_notifications(self, now_ms: int, limit: int) -> list[Notification]: ...

    def apply(self, changes: Changes) -> None: ...

    def mark_sent(self, ids: Iterable[str], at_ms: int) -> object: ...

    def mark_retry(self, notification_id: str, error: str, next_attempt_ms: int) -> object: ...

    def mark_failed(self, notification_id: str, error: str) -> object: ...

    def mark_digested(self, ids: Iterable[str], digest_id: str) -> object: ...

    def delivery(self, notification_id: str) -> Delivered | None: ...


# --- apprise ----------------------------------------------------------------------------------------------

_NOTIFY_TYPE = {
    Severity.EMERGENCY: apprise.NotifyType.FAILURE,
    Severity.SERIOUS: apprise.NotifyType.WARNING,
    Severity.ORDINARY: apprise.NotifyType.INFO,
}


def _scheme(url: str) -> str:
    """What a URL is, without its credentials (safe to log)."""
    return url.split("://", 1)[0] + "://..." if "://" in url else "(not a URL)"


class AppriseCourier:
    """Sends to one person's apprise URLs (all of them: e-mail and a messenger, say)."""

    def __init__(self, *, timeout_s: float = 60.0) -> None:
        if timeout_s <= 0:
            raise AlertConfigError(f"apprise timeout must be positive, not {timeout_s}")
        self.timeout_s = timeout_s
        # No persistent storage (apprise's default without a path): the outbox is the memory.
        self._asset = apprise.AppriseAsset(async_mode=True)

    def deliver(self, notification: Notification, recipient_urls: tuple[str, ...]) -> None:
        if not recipient_urls:
            raise DeliveryError(f"{notification.id}: no URL to deliver to")
        client = apprise.Apprise(asset=self._asset)
        unusable = [_scheme(url) for url in recipient_urls if not client.add(url)]
        if unusable:
            raise DeliveryError(f"{notification.id}: apprise cannot use the URL(s) {', '.join(unusable)}")
        kind = (
            apprise.NotifyType.SUCCESS
            if notification.kind is NotificationKind.RESOLVED
            else _NOTIFY_TYPE[notification.severity]
        )
        try:
            outcome = client.notify(
                body=notification.body,
                title=notification.title,
                notify_type=kind,
                body_format=apprise.NotifyFormat.TEXT,
                timeout=self.timeout_s,
            )
        except Exception as exc:  # a plugin's bug must not stall the outbox: retried, then failed
            raise DeliveryError(f"{notification.id}: apprise raised {exc!r}") from exc
        with outcome as result:
            if result:
                return
            failed = [r.name for r in result if not r]
            reasons = dict.fromkeys(
                entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR")
            )
            raise DeliveryError(
                f"{notification.id}: {', '.join(failed) or 'apprise'} failed ({result.status.name}): "
                + ("; ".join(reasons) or "no reason given")
            )


# --- MQTT -------------------------------------------------------------------------------------------------


def mqtt_document(notification: Notification) -> bytes:
    """The JSON a control-room screen receives."""
    return orjson.dumps(
        {
            "id": notification.id,
            "kind": notification.kind.value,
            "severity": notification.severity.value,
            "title": notification.title,
            "body": notification.body,
            "alert_ids": list(notification.alert_ids),
            "created_ms": notification.created_ms,
        }
    )


class MqttCourier:
    """Publishes each notification on ``cw/v1/alerts/<severity>`` at QoS 1; a context manager.

    ``deliver`` returns once the broker acknowledged (PUBACK); no PUBACK within ``ack_timeout`` s, a lost
    connection or a refusal is a ``DeliveryError``. paho reconnects by itself in the background.
    """

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str | None = None,
        connect_timeout: float = 10.0,
        ack_timeout: float = 10.0,
    ) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self._answered = threading.Event()  # the broker's CONNACK came, accepting or refusing
        self._refused: str | None = None
        self._refusals: dict[int, str] = {}  # mid -> the broker's reason (MQTT 5 PUBACK reason code)
        self._lock = threading.Lock()
        # two senders must not share one client id
        client = new_client(address, client_id or f"citywatch-alerts-{os.getpid()}")
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client

    def _on_connect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._refused = str(reason) if reason.is_failure else None
        if reason.is_failure:
            log.warning("broker %s refused the alerts connection: %s", self.address, reason)
        self._answered.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("alerts connection to %s lost (%s); paho reconnects", self.address, reason)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            with self._lock:
                self._refusals[mid] = str(reason)

    def __enter__(self) -> Self:
        try:
            self._client.connect(self.address.host, self.address.port, keepalive=60)
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"cannot connect to {self.address}: {exc}") from exc
        self._client.loop_start()
        if not self._answered.wait(self.connect_timeout) or self._refused is not None:
            self.close()
            raise DeliveryError(f"{self.address} did not accept the connection: {self._refused or 'timeout'}")
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def deliver(self, notification: Notification, recipient_urls: tuple[str, ...] = ()) -> None:
        topic = f"{ALERTS_TOPIC}/{notification.severity.value}"
        info = self._client.publish(topic, mqtt_document(notification), qos=1)
        try:
            info.wait_for_publish(self.ack_timeout)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"{notification.id}: publish on {topic} failed: {exc}") from exc
        if not info.is_published():
            raise DeliveryError(
                f"{notification.id}: no PUBACK from {self.address} in {self.ack_timeout:.0f} s"
            )
        with self._lock:
            refused = self._refusals.pop(info.mid, None)
        if refused is not None:
            raise DeliveryError(f"{notification.id}: {self.address} refused {topic}: {refused}")


# --- the outbox sender -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResult:
    sent: int  # notifications delivered and marked sent (a digest counts once)
    retried: int  # failed this time, due again after the backoff
    failed: int  # given up after max_attempts
    digested: int = 0  # folded into a digest


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxConfig:
    # CHOICE: 8 attempts with DELIVERY_BACKOFF span about an hour (30 s doubling to 30 min); after that
    # a person must look at the contacts or the relay (``citywatch alerts`` shows failed notifications).
    max_attempts: int = 8
    # CHOICE: one pass reads at most this many due notifications; a storm larger than that is collapsed
    # over a few passes (seconds apart), never dropped.
    batch: int = 500

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise AlertConfigError(f"outbox max_attempts must be at least 1, not {self.max_attempts}")
        if self.batch < 1:
            raise AlertConfigError(f"outbox batch must be at least 1, not {self.batch}")


class OutboxSender:
    """One ``send_due`` pass delivers what is due; ``couriers`` reach people, ``control_room`` the screens."""

    def __init__(
        self,
        store: Outbox,
        couriers: Sequence[Courier],
        contacts_urls: Callable[[str], tuple[str, ...]],
        backoff: Backoff = DELIVERY_BACKOFF,
        digest_config: DigestConfig | None = None,
        *,
        control_room: Sequence[Courier] = (),
        config: OutboxConfig | None = None,
        alert_lookup: Callable[[str], Alert] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not (0 < backoff.base_s <= backoff.cap_s and backoff.factor >= 1 and 0 <= backoff.jitter <= 1):
            raise AlertConfigError(f"delivery backoff {backoff} is inconsistent")
        self.store = store
        self.couriers = tuple(couriers)
        self.control_room = tuple(control_room)
        self.contacts_urls = contacts_urls
        self.backoff = backoff
        self.digest_config = digest_config or DigestConfig()
        self.config = config or OutboxConfig()
        self.alert_lookup = alert_lookup  # names the crew and orders digests by deadline (store.get)
        self.rand = rand
        # notification id -> channels already served ("<courier>:<person>:<url>", "control-room:<n>"): a
        # retry does not repeat them (in this process; forgotten once the notification is sent or failed)
        self._served: dict[str, set[str]] = defaultdict(set)

    def send_due(self, now_ms: int) -> SendResult:
        due = self.store.pending_notifications(now_ms, self.config.batch)
        # A notification some channels already have is finished on its own: folding it into a digest
        # would tell those people twice.
        begun = [n for n in due if self._served.get(n.id)]
        pending = [n for n in due if not self._served.get(n.id)]
        to_send, digest_of = collapse(pending, now_ms, self.digest_config)
        if digest_of:
            to_send, digest_of = self._with_alerts(pending, to_send, digest_of, now_ms)
            self._record_digests(pending, to_send, digest_of)
        to_send = begun + to_send
        sent = retried = failed = 0
        for note in to_send:
            try:
                self._deliver(note)
            except DeliveryError as exc:
                if self._give_up_or_retry(note, str(exc), now_ms):
                    failed += 1
                else:
                    retried += 1
            else:
                self.store.mark_sent([note.id], now_ms)
                self._served.pop(note.id, None)
                sent += 1
        return SendResult(sent=sent, retried=retried, failed=failed, digested=len(digest_of))

    def _with_alerts(
        self,
        pending: Sequence[Notification],
        to_send: list[Notification],
        digest_of: dict[str, str],
        now_ms: int,
    ) -> tuple[list[Notification], dict[str, str]]:
        """Collapse again with the collapsed notifications' alerts (same digests, better text)."""
        if self.alert_lookup is None:
            return to_send, digest_of
        alerts: dict[str, Alert] = {}
        for note in pending:
            if note.id in digest_of:
                for alert_id in note.alert_ids:
                    try:
                        alerts[alert_id] = self.alert_lookup(alert_id)
                    except AlertError as exc:  # unknown, or the store hiccuped: the digest says less
                        log.debug("digest without alert %s: %s", alert_id, exc)
        return collapse(pending, now_ms, self.digest_config, alerts)

    def _record_digests(
        self, pending: Sequence[Notification], to_send: Sequence[Notification], digest_of: Mapping[str, str]
    ) -> None:
        """Store the digests first (so they retry like any notification), then fold their members in.

        A crash between the two leaves both pending: the next pass makes the same digests again (same
        ids, ignored by the store) unless new notifications joined, in which case some news goes out twice.
        Nothing is ever lost.
        """
        known = {n.id for n in pending}
        digests = tuple(n for n in to_send if n.kind is NotificationKind.DIGEST and n.id not in known)
        self.store.apply(Changes(notifications=digests))
        members: dict[str, list[str]] = defaultdict(list)
        for note_id, digest_id in digest_of.items():
            members[digest_id].append(note_id)
        for digest_id, ids in members.items():
            self.store.mark_digested(ids, digest_id)
            log.info("folded %d notifications into %s", len(ids), digest_id)

    def _deliver(self, note: Notification) -> None:
        """Every channel of ``note``; raises one ``DeliveryError`` naming every channel that failed."""
        served = self._served[note.id]
        errors: list[str] = []
        for person in dict.fromkeys(note.recipients):
            urls = self.contacts_urls(person)
            if not urls:
                log.warning("%s: %s has no contact URL; not delivered to them", note.id, person)
                continue
            for index, courier in enumerate(self.couriers):
                for url in urls:  # one at a time: a failing webhook must not repeat the e-mail
                    channel = f"{index}:{person}:{url}"
                    if channel in served:
                        continue
                    try:
                        courier.deliver(note, (url,))
                    except DeliveryError as exc:
                        errors.append(f"{person}: {exc}")
                    else:
                        served.add(channel)
        for index, courier in enumerate(self.control_room):
            channel = f"control-room:{index}"
            if channel in served:
                continue
            try:
                courier.deliver(note, ())
            except DeliveryError as exc:
                errors.append(f"control room: {exc}")
            else:
                served.add(channel)
        if errors:
            raise DeliveryError("; ".join(errors))

    def _give_up_or_retry(self, note: Notification, error: str, now_ms: int) -> bool:
        """Record a failed attempt; True when that was the last one allowed."""
        record = self.store.delivery(note.id)
        attempt = (record.attempts if record is not None else 0) + 1  # this one
        if attempt >= self.config.max_attempts:
            log.error("giving up on %s after %d attempts: %s", note.id, attempt, error)
            self.store.mark_failed(note.id, error)
            self._served.pop(note.id, None)
            return True
        delay_s = self.backoff.next_delay(attempt, self.rand())
        log.warning("%s: attempt %d failed, again in %.0f s: %s", note.id, attempt, delay_s, error)
        self.store.mark_retry(note.id, error, now_ms + round(delay_s * 1000))
        return False
