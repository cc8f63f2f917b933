"""Requests and answers with one device over a line: timeouts, retries, and answers that come too late.

A request is sent up to ``attempts`` times with the same sequence number, so a device that did the work
but whose answer was lost answers the retry from its memory instead of doing it twice. An answer is
taken only if it carries the request's sequence number and answers its type: a late answer to an
earlier request, our own echo on a half-duplex bus, or another device's chatter is skipped. When
nothing usable came back the error says whether the line was silent (``NoAnswer``) or noisy
(``Garbled``: answers arrived but failed their checksum).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from citywatch.commission import DeviceRefused, Garbled, NoAnswer
from citywatch.commission.link import Transport
from devices.commissioning import MessageError
from devices.commissioning.config import DeviceConfig, Identity, StoredConfig
from devices.commissioning.framing import (
    ANY_ADDRESS,
    PROTOCOL_VERSION,
    Deframer,
    DeframerCounts,
    Frame,
    encode,
)
from devices.commissioning.messages import (
    ConfigAnswer,
    ConfigWritten,
    DeviceErrorReply,
    ErrorCode,
    Identify,
    LogLines,
    ReadConfig,
    ReadLog,
    Reboot,
    Rebooting,
    Request,
    Response,
    SelfTest,
    SelfTestReport,
    WriteConfig,
    answers,
    decode_response,
    encode_request,
)

_CHECK_HINT = "check that the device is powered, the cable is in its service port, and the port is right"


class DeviceClient:
    """Talks to the device at ``address`` on ``link`` (0: whoever is on a point-to-point line)."""

    def __init__(
        self,
        link: Transport,
        *,
        address: int = ANY_ADDRESS,
        timeout_s: float = 1.0,
        attempts: int = 3,
        clock: Callable[[], float] = time.monotonic,
        deframer: Deframer | None = None,
    ) -> None:
        self.link = link
        self.address = address
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.clock = clock
        # One deframer per line: devices on a bus share it (the bytes of one answer are not split).
        self.deframer = deframer or Deframer()
        self._seq = random.randrange(256)
        self.retries = 0  # requests sent again because no good answer came in time
        self.skipped = 0  # well-formed frames that were not the awaited answer

    @property
    def line(self) -> DeframerCounts:
        return self.deframer.counts()

    def for_address(self, address: int) -> DeviceClient:
        """A client for another device on the same line."""
        return DeviceClient(
            self.link,
            address=address,
            timeout_s=self.timeout_s,
            attempts=self.attempts,
            clock=self.clock,
            deframer=self.deframer,
        )

    # -- the operations ---------------------------------------------------------------------------
    def identify(self, *, attempts: int | None = None, timeout_s: float | None = None) -> Identity:
        return _expect(self.request(Identify(), attempts=attempts, timeout_s=timeout_s), Identity)

    def read_config(self) -> StoredConfig | None:
        return _expect(self.request(ReadConfig()), ConfigAnswer).config

    def write_config(self, config: DeviceConfig) -> None:
        _expect(self.request(WriteConfig(config)), ConfigWritten)

    def self_test(self, timeout_s: float) -> SelfTestReport:
        return _expect(self.request(SelfTest(), timeout_s=timeout_s), SelfTestReport)

    def reboot(self) -> Rebooting:
        return _expect(self.request(Reboot()), Rebooting)

    def read_log(self, lines: int) -> tuple[str, ...]:
        return _expect(self.request(ReadLog(lines)), LogLines).lines

    # -- one request ------------------------------------------------------------------------------
    def request(
        self, request: Request, *, attempts: int | None = None, timeout_s: float | None = None
    ) -> Response:
        """Send ``request`` until a valid answer comes; ``DeviceRefused`` when the answer is an error."""
        kind, payload = encode_request(request)
        self._seq = (self._seq + 1) % 256
        wire = encode(Frame(PROTOCOL_VERSION, self.address, self._seq, kind, payload))
        tries = attempts or self.attempts
        wait = timeout_s or self.timeout_s
        damaged_before = self.deframer.counts().damaged
        busy: DeviceErrorReply | None = None
        for attempt in range(tries):
            if attempt:
                self.retries += 1
            self.link.write(wire)
            response = self._await(kind, wait)
            if isinstance(response, DeviceErrorReply):
                if response.code is ErrorCode.BUSY:
                    busy = response
                    continue
                raise _refused(request, response)
            if response is not None:
                return response
        damaged = self.deframer.counts().damaged - damaged_before
        what = type(request).__name__
        where = f"{self.link.name}" + (f" (bus address {self.address})" if self.address else "")
        if busy is not None:
            raise NoAnswer(f"the device on {where} stayed busy: {busy.detail}", hint="wait and run again")
        if damaged:
            raise Garbled(
                f"{damaged} answers to {what} from {where} failed their checksum, none came through intact",
                hint="the line is noisy or the speed is wrong: check the cable, its shield and length, "
                "and CITYWATCH_COMMISSION_BAUDRATE",
            )
        raise NoAnswer(
            f"no answer to {what} from {where} after {tries} attempts of {wait:g} s", hint=_CHECK_HINT
        )

    def _await(self, kind: int, wait: float) -> Response | None:
        deadline = self.clock() + wait
        while (remaining := deadline - self.clock()) > 0:
            for frame in self.deframer.feed(self.link.read(remaining)):
                if not self._is_answer(frame, kind):
                    self.skipped += 1
                    continue
                try:
                    return decode_response(frame.type, frame.payload)
                except MessageError:
                    self.skipped += 1  # intact but unreadable: treated as no answer, and retried
        return None

    def _is_answer(self, frame: Frame, kind: int) -> bool:
        mine = self.address in (ANY_ADDRESS, frame.address)
        return mine and frame.seq == self._seq and answers(kind, frame.type)


T = TypeVar("T")


def _expect(response: Response, kind: type[T]) -> T:
    if not isinstance(response, kind):
        raise DeviceRefused(
            f"the device answered {type(response).__name__} where {kind.__name__} was expected",
            code="bad_answer",
            hint="the device's firmware does not follow the protocol: report its model and firmware",
        )
    return response


def _refused(request: Request, reply: DeviceErrorReply) -> DeviceRefused:
    what = type(request).__name__
    field = f" ({reply.field})" if reply.field else ""
    hints = {
        ErrorCode.UNSUPPORTED_VERSION: "update citywatch or the device's firmware",
        ErrorCode.UNKNOWN_TYPE: "the device's firmware is too old for this tool: update it",
    }
    return DeviceRefused(
        f"the device refused {what}{field}: {reply.detail}",
        code=reply.code.value,
        detail=reply.detail,
        field=reply.field,
        hint=hints.get(reply.code, ""),
    )
