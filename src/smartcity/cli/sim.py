"""``smartcity sim``: simulated field equipment to point agents at.

``sim modbus`` serves a 110/22 kV substation over Modbus TCP (and RTU on a serial port),
``sim air`` an air-quality monitoring station over Modbus TCP, ``sim opcua`` a water station
over OPC-UA with Basic256Sha256; each writes, next to its data, a ready device profile for
``smartcity agent``. ``sim fault`` injects a fault into a running simulator through its own
protocol, exactly as a test or a drill would.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from smartcity.cli.errors import fail
from smartcity.runtime.foreground import run_until_signalled

sim_app = typer.Typer(
    name="sim",
    help="Simulated substations and air-quality stations (Modbus) and water stations (OPC-UA) "
    "with faults on command.",
    no_args_is_help=True,
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


def _dump(path: Path, document: dict[str, Any], header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(f"# {header}\n{text}", encoding="utf-8")


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
    baudrate: Annotated[int, typer.Option(help="Serial speed for RTU.")] = 19200,
    period: Annotated[float, typer.Option(min=0.01, help="Seconds between updates.")] = 1.0,
    seed: SeedOption = None,
    out: OutOption = Path(".smartcity/sim"),
) -> None:
    """Serve a simulated 110/22 kV substation over Modbus until Ctrl-C.

    Values follow a daily load curve with noise; every data type and byte/word order is on
    the register map. Faults: `smartcity sim fault tcp://HOST:PORT voltage_sag`.
    """
    from smartcity.agents.sim.substation import Substation, serve_substation

    console = Console(soft_wrap=True)

    def ready(simulator: Substation) -> None:
        written = []
        for unit in simulator.units:
            profile = simulator.profile_for(unit)
            document = profile.model_dump(mode="json", exclude_defaults=True)
            document["protocol"] = "modbus"
            path = out / f"substation-unit{unit}.yaml"
            _dump(path, document, f"Simulated substation bay on unit id {unit}")
            written.append(path)
        console.print(
            f"[green]Substation simulator ready[/green] on tcp://{simulator.host}:"
            f"{simulator.port}, unit ids {simulator.units[0]}..{simulator.units[-1]}"
        )
        if serial_port:
            console.print(f"  Modbus RTU on {escape(serial_port)} at {baudrate} baud")
        console.print(f"  profiles: {escape(str(written[0].parent))}/substation-unit*.yaml")
        console.print(
            f"  read it:  smartcity agent check --profile {escape(str(written[0]))}",
            highlight=False,
        )
        console.print(
            "  fault:    smartcity sim fault "
            f"tcp://{simulator.host}:{simulator.port} voltage_sag --seconds 30",
            highlight=False,
        )

    async def main(stop: asyncio.Event) -> None:
        await serve_substation(
            host,
            port,
            devices=devices,
            serial_port=serial_port,
            baudrate=baudrate,
            period=period,
            seed=seed,
            stop_event=stop,
            on_ready=ready,
        )

    try:
        run_until_signalled(main)
    except OSError as exc:
        fail(exc)
    console.print("Substation simulator stopped.")


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
    from smartcity.agents.profile import ProfileError
    from smartcity.agents.sim.air_quality import (
        DEFAULT_DEVICE,
        AirQualityStation,
        serve_air_quality,
        station_document,
    )

    try:  # a site id that cannot be a subject token is refused before anything listens
        station_document(site=site, device=DEFAULT_DEVICE, endpoint=f"tcp://{host}:{port}")
    except ProfileError as exc:
        fail(exc, 2)
    console = Console(soft_wrap=True)

    def ready(station: AirQualityStation) -> None:
        path = out / "air-quality-station.yaml"
        _dump(path, station.document(), "Simulated air-quality station (smartcity sim air)")
        endpoint = f"tcp://{station.host}:{station.port}"
        console.print(
            f"[green]Air-quality station simulator ready[/green] on {endpoint}, "
            f"site {escape(site)}, unit id {station.units[0]}"
        )
        console.print(f"  profile:  {escape(str(path))}")
        console.print(
            f"  read it:  smartcity agent check --profile {escape(str(path))}", highlight=False
        )
        console.print(
            f"  fault:    smartcity sim fault {endpoint} pollution_episode --seconds 3600 "
            "(the hourly VN_AQI rules judge it at the end of the hour)",
            highlight=False,
        )

    async def main(stop: asyncio.Event) -> None:
        await serve_air_quality(
            host, port, period=period, seed=seed, site=site, stop_event=stop, on_ready=ready
        )

    try:
        run_until_signalled(main)
    except OSError as exc:
        fail(exc)
    console.print("Air-quality station simulator stopped.")


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
    from smartcity.agents.opcua.certificates import default_application_uri, generate_certificate
    from smartcity.agents.sim.water_station import CERT_FILE, WaterStation, serve_water_station

    shipped = resources.files("smartcity.agents.sim.profiles") / "water_station.yaml"

    console = Console(soft_wrap=True)
    certs = out / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    agent_cert, agent_key = certs / "agent.der", certs / "agent.pem"
    if not agent_cert.exists():
        generate_certificate(
            agent_cert, agent_key, application_uri=default_application_uri("agent"), role="client"
        )
    modes = ("None", "Sign", "SignAndEncrypt") if allow_none else ("Sign", "SignAndEncrypt")

    def ready(station: WaterStation) -> None:
        trusted = out / "trusted-servers"  # the profile's trust folder: the agent trusts it
        trusted.mkdir(parents=True, exist_ok=True)
        (trusted / CERT_FILE).write_bytes((certs / CERT_FILE).read_bytes())
        document = yaml.safe_load(shipped.read_text(encoding="utf-8"))
        document["endpoint"] = station.url
        document["security"].update(cert="certs/agent.der", key="certs/agent.pem")
        path = out / "water-station.yaml"
        _dump(path, document, "Simulated water station (smartcity sim opcua)")
        console.print(f"[green]Water station simulator ready[/green] at {station.url}")
        console.print(f"  security: Basic256Sha256 {' and '.join(modes)}", highlight=False)
        console.print(f"  profile:  {escape(str(path))} (agent certificate in {certs})")
        console.print(
            f"  read it:  smartcity agent check --profile {escape(str(path))}", highlight=False
        )
        console.print(
            f"  fault:    smartcity sim fault {station.url} turbidity_spike --seconds 60 "
            f"--cert {agent_cert} --key {agent_key}",
            highlight=False,
        )

    async def main(stop: asyncio.Event) -> None:
        await serve_water_station(
            host,
            port,
            stop_event=stop,
            on_ready=ready,
            modes=modes,
            certificate_dir=certs,
            trusted_certificates=[agent_cert],
            seed=seed,
        )

    try:
        run_until_signalled(main)
    except OSError as exc:
        fail(exc)
    console.print("Water station simulator stopped.")


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
