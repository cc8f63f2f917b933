"""A commissioning session: one or more lines, each with one device or a bus of them, and the outcomes.

The session holds what every device shares (the registry, the broker's admin session, InfluxDB, the
saved progress) and, per line, opens the port, finds the devices (address 0 on a point-to-point line, a
scan of addresses 1..N on a bus) and runs each one's commissioning. One device's failure is its outcome,
never the end of the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from rich.console import Console
from rich.text import Text

from citywatch.commission import CommissionError, LinkError
from citywatch.commission.backends import AssetBook, CredentialIssuer, ReadingSource
from citywatch.commission.client import DeviceClient
from citywatch.commission.display import ConsoleReporter, print_error
from citywatch.commission.link import SerialLink
from citywatch.commission.progress import ProgressStore
from citywatch.commission.runner import Commissioning, Order, Outcome
from citywatch.commission.settings import CommissionSettings
from devices.commissioning.framing import ANY_ADDRESS


@dataclass(frozen=True, slots=True)
class Target:
    """A line to commission: a port, and the device id for its device (a point-to-point line only)."""

    port: str
    device_id: str | None = None


class Session:
    def __init__(
        self,
        settings: CommissionSettings,
        *,
        assets: AssetBook,
        accounts: CredentialIssuer,
        readings: ReadingSource,
        store: ProgressStore,
        broker_url: str,
        console: Console,
        live: bool = False,
        open_link: Callable[[str, int], SerialLink] = SerialLink,
    ) -> None:
        self.settings = settings
        self.assets, self.accounts, self.readings, self.store = assets, accounts, readings, store
        self.broker_url = broker_url
        self.console = console
        self.live = live
        self.open_link = open_link

    def line(self, target: Target, order: Order, *, bus: bool = False) -> list[Outcome]:
        """Commission the device on ``target``, or every device on its bus."""
        try:
            with self.open_link(target.port, self.settings.baudrate) as link:
                client = DeviceClient(
                    link, timeout_s=self.settings.response_timeout_s, attempts=self.settings.attempts
                )
                if not bus:
                    wanted = replace(order, device_id=target.device_id or order.device_id)
                    return [self.device(client, target.port, wanted)]
                addresses = self.scan(client)
                if not addresses:
                    raise LinkError(
                        f"no device answered on the bus {target.port} at addresses 1 to "
                        f"{self.settings.bus_addresses}",
                        hint="check the bus wiring, its termination and the devices' power",
                    )
                return [self.device(client.for_address(a), target.port, order) for a in addresses]
        except CommissionError as exc:
            print_error(self.console, exc)
            return [Outcome(target.port, ANY_ADDRESS, error=exc)]

    def scan(self, client: DeviceClient) -> list[int]:
        """The bus addresses at which a device answers."""
        found = []
        with self.console.status(f"scanning bus addresses 1 to {self.settings.bus_addresses} ..."):
            for address in range(1, self.settings.bus_addresses + 1):
                try:
                    client.for_address(address).identify(attempts=1)
                except LinkError:
                    continue
                found.append(address)
        where = ", ".join(map(str, found)) or "none"
        self.console.print(Text(f"{client.link.name}: devices at bus address {where}"))
        return found

    def device(self, client: DeviceClient, port: str, order: Order) -> Outcome:
        where = port if not client.address else f"{port} #{client.address}"
        runner = Commissioning(
            client,
            settings=self.settings,
            assets=self.assets,
            accounts=self.accounts,
            readings=self.readings,
            store=self.store,
            broker_url=self.broker_url,
            reporter=ConsoleReporter(self.console, where, live=self.live),
        )
        try:
            progress = runner.run(order)
        except CommissionError as exc:
            print_error(self.console, exc, indent="  ")
            p = runner.progress
            serial = runner.identity.serial if runner.identity else None
            device_id, stage = (p.device_id, p.stage) if p is not None else (None, None)
            return Outcome(port, client.address, serial, device_id, stage, error=exc)
        line = client.line
        if line.damaged or client.retries:
            self.console.print(
                f"  line: {line.damaged} damaged frames, {client.retries} requests sent again; all recovered"
            )
        if progress.done:
            self.console.print(f"  [green]{progress.device_id} is in service.[/green]")
        return Outcome(
            port, client.address, progress.serial, progress.device_id, progress.stage, runner.reading
        )
