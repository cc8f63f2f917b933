"""Commands to field devices, closed-loop: sent over MQTT, acknowledged, confirmed by the telemetry.

An operator asks for something (switch a lamp, a circuit or a road on or off, dim it, override its schedule
for a while, start or stop a pump); the request becomes one command per device, and each command moves
through ``model.TRANSITIONS``: pending -> delivered (the device acknowledged) -> confirmed (its readings
show the effect) or failed / timed out / not effective. A command the device acknowledged but its
readings do not show raises a ``command_not_effective`` finding.

Pure core: ``model`` (states, the transition table, records), ``effects`` (what a reading says about a
command's effect), ``fleet`` (requests expanded through the registry's relations), ``tracker`` (the state
machine driven by acks, readings and time), ``findings``. Adapters: ``store`` (SQL), ``service``
(``CommandDesk``: paho, a tick thread), ``sinks`` (findings to InfluxDB), ``routes`` (FastAPI).

Errors::

    CommandingError              root of every error raised here
     ├── UnknownTarget           the request names a lamp, circuit, road or station the registry lacks
     ├── InvalidRequest          the action does not fit the target (a pump order for a road, pump 4 of 3)
     ├── UnknownCommand          no command request has this id
     ├── DeskUnavailable         the broker is not connected: nothing can be sent now
     └── CommandStoreError       the commands database cannot be opened, read or written
"""


class CommandingError(Exception):
    """Root of every error raised by the commanding package."""


class UnknownTarget(CommandingError):
    """The request names a target the registry does not have (or has no commandable device in)."""


class InvalidRequest(CommandingError):
    """The request cannot be carried out as asked; the message says why."""


class UnknownCommand(CommandingError):
    """No command request has this id."""


class DeskUnavailable(CommandingError):
    """The command desk cannot send now (no broker connection)."""


class CommandStoreError(CommandingError):
    """The commands database cannot be opened, read or written."""
