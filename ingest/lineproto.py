"""InfluxDB line protocol for readings (pure).

One measurement per device kind; tags ``device`` and ``district`` (sorted by key, as InfluxDB prefers);
fields are the kind's fields plus ``seq``; the timestamp is the device's, in milliseconds. Floats are always
written as floats and integers with the ``i`` suffix, so a field never changes type between writes.
"""

from __future__ import annotations

from functools import lru_cache

from devices.contract import Reading

PRECISION = "ms"

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


@lru_cache(maxsize=4096)
def escape_tag(value: str) -> str:
    """Escape a tag value. Device ids are already restricted; districts come from the registry."""
    if "\n" in value or "\r" in value or value.endswith("\\") or not value:
        raise ValueError(f"tag value {value!r} cannot be written as line protocol")
    return value.translate(_TAG_ESCAPES)


def reading_line(reading: Reading) -> str:
    # Inlined per type rather than a function per field: this runs for every field of every reading.
    parts = []
    for name, value in reading.fields.items():
        kind = type(value)
        if kind is float:
            parts.append(f"{name}={value!r}")
        elif kind is bool:
            parts.append(f"{name}=true" if value else f"{name}=false")
        else:
            parts.append(f"{name}={value}i")
    fields = ",".join(parts)
    return (
        f"{reading.kind.value},device={reading.device},district={escape_tag(reading.district)} "
        f"{fields},seq={reading.seq}i {reading.ts_ms}"
    )
