"""The commissioning frame: bytes on the serial line in, frames out, and back.

On the wire, every frame is delimited by a zero byte on both sides and COBS-stuffed in between, so a
zero byte never occurs inside a frame::

    00 | COBS( version u8 | address u8 | seq u8 | type u8 | payload (0..1024 bytes) | CRC-32 u32 BE ) | 00

- ``version``: the protocol version (1). A receiver that does not speak it answers an error in version 1.
- ``address``: the device's bus address (1..247); 0 means "whoever is on this point-to-point line".
- ``seq``: chosen by the requester, echoed by the response: a late answer to an earlier attempt is
  recognised and dropped.
- ``type``: the message type (``messages.MessageType``).
- CRC-32 (IEEE 802.3, as Ethernet, zip and PNG; ``zlib.crc32``) over the header and the payload, before
  stuffing. Not CRC-16: a bit flipped in a COBS code byte moves bytes about rather than flipping one,
  which CRC-16's guarantees do not cover, and the property tests found such a damaged 11-byte frame that
  passed a CRC-16 as another valid frame. CRC-32 leaves one damaged frame in 4 billion undetected.

Why COBS and two delimiters: resynchronisation needs no timer and no guessing. Whatever garbage precedes
a frame (line noise, a boot banner, half a frame cut by a reset) ends at the frame's leading zero, so the
frame itself is always found; a damaged frame fails its CRC and costs only itself. COBS adds one byte per
254 at most (Cheshire and Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM ToN 1999).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from devices.commissioning import FrameTooLong

PROTOCOL_VERSION = 1
DELIMITER = 0
MAX_PAYLOAD = 1024
#: Address 0 reaches the one device on a point-to-point line; bus addresses are 1..247 (as Modbus).
ANY_ADDRESS = 0
MAX_ADDRESS = 247

_HEADER = struct.Struct(">BBBB")  # version, address, seq, type
_CRC = struct.Struct(">I")
_MIN_BODY = _HEADER.size + _CRC.size
_MAX_BODY = _MIN_BODY + MAX_PAYLOAD
#: The longest stuffed frame between two delimiters: one code byte per 254 data bytes, plus one.
MAX_STUFFED = _MAX_BODY + _MAX_BODY // 254 + 1


@dataclass(frozen=True, slots=True)
class Frame:
    version: int
    address: int
    seq: int
    type: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class DeframerCounts:
    """What a deframer found so far; the tool reports these when a line is noisy."""

    frames: int = 0
    skipped_bytes: int = 0  # bytes that belonged to no valid frame (delimiters not counted)
    crc_errors: int = 0  # stuffed correctly, but the CRC did not match: damaged in transit
    malformed: int = 0  # not valid COBS, or too short to hold a header and a CRC: garbage
    overlong: int = 0  # more than MAX_STUFFED bytes without a delimiter: garbage, skipped to the next one

    @property
    def damaged(self) -> int:
        return self.crc_errors + self.malformed + self.overlong


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3): ``crc32(b"123456789") == 0xCBF43926``."""
    return zlib.crc32(data)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the same bytes without any zero, one byte longer per 254."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
            continue
        block.append(byte)
        if len(block) == 254:
            out.append(255)
            out += block
            block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    """The bytes ``cobs_encode`` stuffed, or None when ``data`` is not valid COBS (or holds a zero)."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            return None
        block = data[i + 1 : end]
        if DELIMITER in block:
            return None
        out += block
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


def encode(frame: Frame) -> bytes:
    """The frame as it goes on the wire, both delimiters included."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise FrameTooLong(f"payload of {len(frame.payload)} bytes, the limit is {MAX_PAYLOAD}")
    body = _HEADER.pack(frame.version, frame.address, frame.seq, frame.type) + frame.payload
    return b"\x00" + cobs_encode(body + _CRC.pack(crc32(body))) + b"\x00"


class Deframer:
    """Incremental: ``feed`` any bytes as they arrive, get the complete valid frames back.

    Never raises on input: damage and garbage are skipped to the next delimiter and counted.
    """

    def __init__(self) -> None:
        self._stuffed = bytearray()
        self._discarding = False  # an overlong run: drop everything up to the next delimiter
        self._frames = self._skipped = self._crc_errors = self._malformed = self._overlong = 0

    def counts(self) -> DeframerCounts:
        return DeframerCounts(self._frames, self._skipped, self._crc_errors, self._malformed, self._overlong)

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            end = data.find(DELIMITER, start)
            if end < 0:
                self._take(data[start:])
                return frames
            self._take(data[start:end])
            frame = self._close()
            if frame is not None:
                frames.append(frame)
            start = end + 1

    def reset(self) -> None:
        """Forget a partial frame (the line was reopened); the counts stay."""
        self._skipped += len(self._stuffed)
        self._stuffed.clear()
        self._discarding = False

    def _take(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._discarding:
            self._skipped += len(chunk)
            return
        self._stuffed += chunk
        if len(self._stuffed) > MAX_STUFFED:
            self._overlong += 1
            self._skipped += len(self._stuffed)
            self._stuffed.clear()
            self._discarding = True

    def _close(self) -> Frame | None:
        """A delimiter: what came since the last one is a frame, or garbage."""
        stuffed = bytes(self._stuffed)
        self._stuffed.clear()
        if self._discarding:
            self._discarding = False
            return None
        if not stuffed:
            return None  # two delimiters in a row: the gap between frames
        body = cobs_decode(stuffed)
        if body is None or len(body) < _MIN_BODY:
            self._malformed += 1
            self._skipped += len(stuffed)
            return None
        (crc,) = _CRC.unpack_from(body, len(body) - _CRC.size)
        content = body[: -_CRC.size]
        if crc32(content) != crc:
            self._crc_errors += 1
            self._skipped += len(stuffed)
            return None
        version, address, seq, kind = _HEADER.unpack_from(content)
        self._frames += 1
        return Frame(version, address, seq, kind, content[_HEADER.size :])
