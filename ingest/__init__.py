"""MQTT to InfluxDB ingest: decode, validate, batch, write durably, acknowledge.

A message is acknowledged to the broker only once its readings are durable: InfluxDB accepted them,
or they sit fsynced in the local spool. Rejected readings go to the dead-letter store with a reason.

Exceptions::

    IngestError
     ├── InfluxError                    the database did not take a write or a query
     │    ├── InfluxTransientError       timeout, connection refused, 5xx, 429: retry later
     │    ├── InfluxPointsRejected       400 / 422: some lines are bad (field type conflict, parse error)
     │    └── InfluxTooLarge             413: split the batch
     └── SpoolError                     the on-disk spool cannot be written or read
"""


class IngestError(Exception):
    """Root of every error raised by the ingest package."""


class InfluxError(IngestError):
    """InfluxDB did not accept a request."""


class InfluxTransientError(InfluxError):
    """A failure worth retrying: the same request may succeed later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InfluxPointsRejected(InfluxError):
    """InfluxDB refused some lines of a write; ``detail`` is its reason."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InfluxTooLarge(InfluxError):
    """The request body exceeded the server's limit."""


class SpoolError(IngestError):
    """The spool directory could not be written or read."""
