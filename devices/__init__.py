"""The shared domain: device kinds, the telemetry contract, topics and the asset registry.

Imports none of its sibling packages; every other package may import it.

Exceptions::

    DevicesError
     ├── RegistryError        a registry file or database cannot be used
     │    └── AssetError       one asset or file row cannot be accepted (devices.assets)
     └── ContractError        a programming error in building a payload
"""


class DevicesError(Exception):
    """Root of every error raised by the devices package."""


class RegistryError(DevicesError):
    """A registry operation failed; the message names the asset and the field."""


class ContractError(DevicesError):
    """A payload could not be built from the given values."""
