"""``smartcity sim``: simulated field equipment to point agents at.

``sim modbus`` serves a 110/22 kV substation over Modbus TCP (and RTU on a serial port),
``sim air`` an air-quality monitoring station over Modbus TCP, ``sim opcua`` a water station
over OPC-UA with Basic256Sha256; each writes, next to its data, a ready device profile for
``smartcity agent``. ``sim many`` serves several of them in one process, from a plan file
(:mod:`smartcity.agents.sim.plan`; :mod:`smartcity.agents.sim.sites` serves them). ``sim
fault`` injects a fault into a running simulator through its own protocol, exactly as a test
or a drill would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from smartcity.cli.errors import fail
from smartcity.runtime.foreground import run_until_signalled

if TYPE_CHECKING:
    from smartcity.agents.sim.plan import AirSite, SubstationSite, WaterSite

_Site = TypeVar("_Site", "SubstationSite", "AirSite", "WaterSite")

sim_app = typer.Typer(
    name="sim",
    help="Simulated substations and air-quality stations (Modbus) and water stations (OPC-UA) "
    "with faults on command.",
    no_args_is_help=True,
    add_completion=False,
)

HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
OutOption = Annotated[
    Path,
    typer.Option(
        "--out",
        file_okay=False,
        help="Folder for the generated device profile(s) and certificates.",
    ),
]
SeedOption = Annotated[int | None, typer.Option(help="Random seed, for a reproducible simulation.")]


def _say(console: Console) -> Callable[[str], None]:
    return lambda text: console.print(text, highlight=False)


def _serve_one(spec: SubstationSite | AirSite | WaterSite, stopped: str) -> None:
    """Serve one simulated site in the foreground until Ctrl-C."""
    from smartcity.agents.sim.sites import serve_site

    console = Console(soft_wrap=True)

    async def main(stop: asyncio.Event) -> None:
        await serve_site(spec, stop, _say(console))

    try:
        run_until_signalled(main)
    except OSError as exc:
        fail(exc)
    console.print(stopped)


def _site(kind: type[_Site], **fields: Any) -> _Site:
    """The site ``kind`` with ``fields`` (the options, already in range)."""
    from pydantic import ValidationError

    try:
        return kind(**fields)
    except ValidationError as exc:
        fail(exc, 2)


@sim_app.command("modbus")
def sim_modbus(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks one.")] = 5020,
    devices: Annotated[
        int, typer.Option(min=1, max=247, help="Transformer bays, one per unit id from 1.")
    ] = 1,
    serial_port: Annotated[
        str | None,
        typer.Option(help="Also serve Modbus RTU on this serial device (e.g. a socat pty)."),
    ] = None,
    baudrate: Annotated[int, typer.Option(min=1, help="Serial speed for RTU.")] = 19200,
    period: Annotated[float, typer.Option(min=0.01, help="Seconds between updates.")] = 1.0,
    seed: SeedOption = None,
    out: OutOption = Path(".smartcity/sim"),
) -> None:
    """Serve a simulated 110/22 kV substation over Modbus until Ctrl-C.

    Values follow a daily load curve with noise; every data type and byte/word order is on
    the register map. Faults: `smartcity sim fault tcp://HOST:PORT voltage_sag`.
    """
    from smartcity.agents.sim.plan import SubstationSite

    spec = _site(
        SubstationSite,
        name="substation",
        host=host,
        port=port,
        out=out,
        seed=seed,
        devices=devices,
        serial_port=serial_port,
        baudrate=baudrate,
        period=period,
    )
    _serve_one(spec, "Substation simulator stopped.")


@sim_app.command("air")
def sim_air(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks one.")] = 5021,
    period: Annotated[float, typer.Option(min=0.01, help="Seconds between updates.")] = 1.0,
    seed: SeedOption = None,
    site: Annotated[str, typer.Option(help="Site id the profile publishes under.")] = "son-tra-air",
    out: OutOption = Path(".smartcity/sim"),
) -> None:
    """Serve a simulated air-quality monitoring station in Da Nang over Modbus TCP until
    Ctrl-C.

    PM2.5, PM10, NO2, SO2, CO, O3, air temperature and humidity on the environment field's
    air-quality-station register map, following the day with noise. Writes
    --out/air-quality-station.yaml, polled every 5 s. Faults: `smartcity sim fault
    tcp://HOST:PORT pollution_episode`.
    """
    from smartcity.agents.sim.plan import AirSite, check_site
    from smartcity.runtime.errors import InvalidArgument

    spec = _site(
        AirSite, name="air", host=host, port=port, out=out, seed=seed, site=site, period=period
    )
    try:  # a site id that cannot be a subject token is refused before anything listens
        check_site(spec)
    except InvalidArgument as exc:
        fail(exc.message.removeprefix("air: "), 2)
    _serve_one(spec, "Air-quality station simulator stopped.")


@sim_app.command("opcua")
def sim_opcua(
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 picks one.")] = 4840,
    allow_none: Annotated[
        bool,
        typer.Option(
            "--allow-none", help="Also offer an unsecured endpoint (policy None); off by default."
        ),
    ] = False,
    seed: SeedOption = None,
    out: OutOption = Path(".smartcity/sim"),
) -> None:
    """Serve a simulated water station over OPC-UA (Basic256Sha256) until Ctrl-C.

    Creates the station's certificate and an agent certificate the station trusts in
    --out, with a profile that uses them. Faults: `smartcity sim fault opc.tcp://... NAME`.
    """
    from smartcity.agents.sim.plan import WaterSite

    spec = _site(
        WaterSite, name="water", host=host, port=port, out=out, seed=seed, allow_none=allow_none
    )
    _serve_one(spec, "Water station simulator stopped.")


@sim_app.command("many")
def sim_many(
    plan: Annotated[
        Path,
        typer.Option(
            "--plan",
            exists=True,
            dir_okay=False,
            help="YAML or JSON: `simulators:`, a list of sites, each with name, kind (modbus, "
            "air, opcua), host, port, out and the options of its command.",
        ),
    ],
) -> None:
    """Serve several simulated sites in one process until Ctrl-C, each on its own port.

    Each site is what its own command serves (`sim modbus`, `sim air`, `sim opcua`), with
    its files in its own `out` folder and faults through its own protocol; each line it
    prints starts with its name, then `N simulators ready`. One that fails ends them all.
    """
    from smartcity.agents.sim.plan import load_plan
    from smartcity.agents.sim.sites import SiteError, serve_sites
    from smartcity.runtime.errors import InvalidArgument

    console = Console(soft_wrap=True)
    try:
        sites = load_plan(plan).simulators

        async def main(stop: asyncio.Event) -> None:
            await serve_sites(sites, stop, _say(console))

        run_until_signalled(main)
    except InvalidArgument as exc:
        fail(exc, 2)
    except (SiteError, OSError) as exc:
        fail(exc)
    console.print(f"{len(sites)} simulators stopped.")


@sim_app.command("fault")
def sim_fault(
    endpoint: Annotated[
        str, typer.Argument(help="The simulator: tcp://HOST:PORT or opc.tcp://HOST:PORT/station.")
    ],
    fault: Annotated[
        str,
        typer.Argument(
            help="Modbus: voltage_sag (substation), pollution_episode (air-quality station), "
            "frozen, no_answer, clear. OPC-UA: turbidity_spike, frozen_sensor[:Var], "
            "sensor_failure[:Var], uncertain_sensor[:Var], offline, clear."
        ),
    ],
    seconds: Annotated[float, typer.Option(min=1, max=65535, help="How long it lasts.")] = 30,
    unit: Annotated[
        int, typer.Option(min=1, max=247, help="Modbus unit id (a substation's bay).")
    ] = 1,
    cert: Annotated[Path | None, typer.Option(help="OPC-UA: the agent certificate.")] = None,
    key: Annotated[Path | None, typer.Option(help="OPC-UA: the agent private key.")] = None,
) -> None:
    """Inject a fault into a running simulator, through its own protocol."""
    from smartcity.agents.sim.faults import inject_fault

    try:
        result = asyncio.run(inject_fault(endpoint, fault, seconds, unit=unit, cert=cert, key=key))
    except (ValueError, OSError, ConnectionError, TimeoutError) as exc:
        fail(exc)
    Console().print(result, highlight=False)


if __name__ == "__main__":  # `python -m smartcity.cli.sim`: these commands alone, quicker to load
    sim_app(prog_name="smartcity sim")
