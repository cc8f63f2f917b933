"""The simulated city: field devices and gateways that publish telemetry like the real ones.

A pure core: the city as numpy arrays (``city``), generated from a seed (``citygen``, ``layout``,
``facilities``, ``roadnames``) and written / read as the registry's CSV (``inventory``); the physics of
every device kind (``physics`` over ``lighting``, ``structures``, ``drainage``, ``sanitation``, ``weather``);
injected faults with ground truth (``faults``); ticks of readings (``simulation``); simulated time and
pacing (``clock``); the MQTT messages of a tick (``payloads``). ``runner`` drives the loop and
``publisher`` (paho) is the only module that touches the network.

Exceptions::

    SimError                 (firmware_sim) root of every error raised here
     ├── InventoryError       an inventory file or row cannot be used: path, line, asset id
     ├── FaultPlanError       a fault schedule entry cannot be used: line, fault, target
     └── PublishError         the broker cannot be reached or refused the connection
"""


class SimError(Exception):
    """Root of every error raised by the simulator."""


class InventoryError(SimError):
    """An inventory cannot be read or is inconsistent; the message names the file, line and asset."""


class FaultPlanError(SimError):
    """A fault schedule entry is malformed or names an unknown target."""


class PublishError(SimError):
    """The MQTT broker cannot be reached, refused the connection, or stopped acknowledging."""
