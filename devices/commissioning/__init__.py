"""Field commissioning over a serial line: frames, messages and the flow (docs/commissioning.md).

Pure code shared by the technician's tool (``citywatch.commission``) and the simulated device
(``firmware_sim.serial_console``): bytes in, frames out; values in, values out. No port, no clock, no I/O.

    framing     COBS-stuffed frames with a CRC-32, and the incremental deframer that resynchronises
    messages    the versioned requests and responses, and their encoding into frame payloads
    config      the values they carry: a device's identity, its configuration as written and as stored
    payload     reading a payload strictly: known keys only, each value checked once
    flow        the commissioning steps as one transition table, and the decisions between the steps
    placement   where a new device goes: its position and the road / circuit of its nearest neighbour
    flow_doc    the state table of docs/commissioning.md, generated from ``flow.TRANSITIONS``

Exceptions::

    DevicesError                 (devices)
     └── CommissioningError       root of this package
          ├── FrameTooLong         a payload longer than framing.MAX_PAYLOAD cannot be framed
          ├── MessageError         a payload is not a valid message of this protocol version: field and reason
          └── IllegalStep          the flow table has no such move from the current state
"""

from devices import DevicesError


class CommissioningError(DevicesError):
    """Root of every error raised by the commissioning protocol."""


class FrameTooLong(CommissioningError):
    """A payload is longer than a frame can carry."""


class MessageError(CommissioningError):
    """A frame's payload is not a valid message; ``field`` names the culprit when there is one."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {detail}" if field else detail)
        self.detail = detail
        self.field = field


class IllegalStep(CommissioningError):
    """The commissioning table has no move for this event in this state."""

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"no move from {state!r} on {event!r}")
        self.state = state
        self.event = event
