"""Device kinds and the fields each one reports: the telemetry contract's vocabulary.

Field names follow OMA LwM2M / TALQ where a name exists (LwM2M 3416 "outdoor lamp controller",
3418 "lamp actuator", 3435 "filling level"; TALQ LampMonitor / LampActuator), spelled in snake_case.
Valid ranges are physical plausibility bounds, not alarm thresholds: a value outside them is a broken
sensor or a broken encoder, and the reading is rejected. Alarm thresholds live in analytics settings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class DeviceKind(enum.StrEnum):
    """The kinds of field device; the value is also the InfluxDB measurement name."""

    LAMP = "lamp"  # single-lamp controller (one lamp head)
    CABINET = "cabinet"  # lighting cabinet, one per circuit
    BRIDGE_NODE = "bridge_node"  # bridge / tunnel sensor node sending interval summaries
    PUMP_STATION = "pump_station"  # drainage pump station PLC
    FLOOD_GAUGE = "flood_gauge"  # road water depth gauge at a flood point
    BIN = "bin"  # waste bin fill-level meter


class FieldType(enum.Enum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: FieldType
    unit: str
    low: float
    high: float
    description: str

    @property
    def range_text(self) -> str:
        if self.type is FieldType.BOOL:
            return "true / false"
        return f"{self.low:g} to {self.high:g}"


def _f(name: str, unit: str, low: float, high: float, description: str) -> FieldSpec:
    return FieldSpec(name, FieldType.FLOAT, unit, low, high, description)


def _i(name: str, unit: str, low: float, high: float, description: str) -> FieldSpec:
    return FieldSpec(name, FieldType.INT, unit, low, high, description)


def _b(name: str, description: str) -> FieldSpec:
    return FieldSpec(name, FieldType.BOOL, "", 0, 1, description)


_LAMP = (
    _f("supply_voltage", "V", 0, 400, "mains voltage at the controller (LwM2M 3416 / TALQ supplyVoltage)"),
    _f("supply_current", "A", 0, 20, "lamp current"),
    _f("active_power", "W", 0, 2000, "active power drawn by lamp and driver"),
    _f("power_factor", "", 0, 1, "power factor"),
    _f("active_energy", "Wh", 0, 1e12, "cumulative energy counter"),
    _b("lamp_on", "relay commanded on"),
    _i("dim_level", "%", 0, 100, "dim level, 0 is off (LwM2M 3418 / DALI-2 part 253)"),
    _f("burning_hours", "h", 0, 1e6, "cumulative lamp burning hours"),
    _i("switch_count", "", 0, 1e12, "cumulative switch counter"),
    _f("controller_temp", "°C", -50, 125, "controller temperature"),
    _b("lamp_failure", "controller's lamp-failure flag"),
    _b("relay_failure", "controller's relay-failure flag"),
    _b("day_burning", "controller's day-burning flag"),
    _b("cycling", "controller's cycling flag"),
)

_CABINET = (
    _f("voltage_l1", "V", 0, 500, "phase L1 voltage"),
    _f("voltage_l2", "V", 0, 500, "phase L2 voltage"),
    _f("voltage_l3", "V", 0, 500, "phase L3 voltage"),
    _f("current_l1", "A", 0, 1000, "phase L1 current"),
    _f("current_l2", "A", 0, 1000, "phase L2 current"),
    _f("current_l3", "A", 0, 1000, "phase L3 current"),
    _f("active_power", "W", 0, 1e6, "circuit active power"),
    _f("residual_current", "mA", 0, 10_000, "residual (leakage) current"),
    _b("contactor_closed", "circuit contactor state"),
    _b("door_open", "cabinet door contact"),
)

_BRIDGE_NODE = (
    _f("strain_mean", "µε", -5000, 5000, "mean strain over the interval"),
    _f("strain_max", "µε", -5000, 5000, "peak strain over the interval"),
    _f("deflection", "mm", -1000, 1000, "mean deflection / displacement"),
    _f("deflection_max", "mm", -1000, 1000, "peak deflection"),
    _f("accel_rms", "m/s²", 0, 100, "RMS acceleration (~100 Hz sampling)"),
    _f("tilt", "°", -90, 90, "tilt angle"),
    _f("crack_width", "mm", 0, 50, "crack width"),
    _f("temperature", "°C", -50, 80, "structure temperature"),
    _f("wind_speed", "m/s", 0, 90, "wind speed"),
    _f("freq_1", "Hz", 0, 100, "first modal frequency"),
    _f("freq_2", "Hz", 0, 200, "second modal frequency"),
    _f("freq_3", "Hz", 0, 300, "third modal frequency"),
)

#: Pump stations report a block of fields per pump, pump1_* .. pumpN_*.
MAX_PUMPS = 8

_PUMP_STATION = (
    _f("wet_well_level", "m", -5, 40, "wet-well water level above the well floor"),
    _f("inflow", "m³/h", 0, 100_000, "station inflow estimate"),
    _f("outflow", "m³/h", 0, 100_000, "station discharge flow"),
    _f("rainfall", "mm/h", 0, 500, "rain gauge at the station"),
    _b("power_ok", "mains supply present"),
    *(
        spec
        for n in range(1, MAX_PUMPS + 1)
        for spec in (
            _b(f"pump{n}_running", f"pump {n} running"),
            _b(f"pump{n}_fault", f"pump {n} fault relay"),
            _f(f"pump{n}_current", "A", 0, 2000, f"pump {n} motor current"),
            _f(f"pump{n}_vibration", "mm/s", 0, 100, f"pump {n} vibration velocity (ISO 20816-3)"),
            _f(f"pump{n}_bearing_temp", "°C", -40, 200, f"pump {n} bearing temperature"),
            _i(f"pump{n}_starts", "", 0, 1e12, f"pump {n} cumulative start counter"),
        )
    ),
)

_FLOOD_GAUGE = (
    _f("water_depth", "cm", 0, 500, "water depth on the road surface"),
    _f("rainfall", "mm/h", 0, 500, "rain intensity"),
    _f("battery", "%", 0, 100, "battery charge"),
)

_BIN = (
    _f("distance", "cm", 0, 500, "ultrasonic distance from sensor to contents (OMA 3435)"),
    _f("fill_level", "%", 0, 100, "fill level if the meter computes it (OMA 3435 Container Filling Level)"),
    _f("temperature", "°C", -40, 200, "temperature inside the bin"),
    _f("tilt", "°", 0, 180, "tilt from upright"),
    _f("battery", "%", 0, 100, "battery charge"),
)


def _index(specs: tuple[FieldSpec, ...]) -> Mapping[str, FieldSpec]:
    return MappingProxyType({s.name: s for s in specs})


FIELDS: Mapping[DeviceKind, Mapping[str, FieldSpec]] = MappingProxyType(
    {
        DeviceKind.LAMP: _index(_LAMP),
        DeviceKind.CABINET: _index(_CABINET),
        DeviceKind.BRIDGE_NODE: _index(_BRIDGE_NODE),
        DeviceKind.PUMP_STATION: _index(_PUMP_STATION),
        DeviceKind.FLOOD_GAUGE: _index(_FLOOD_GAUGE),
        DeviceKind.BIN: _index(_BIN),
    }
)

#: Fields every stored reading carries besides the kind's own.
SEQ_FIELD = "seq"
