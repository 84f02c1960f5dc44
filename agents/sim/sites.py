"""Simulated sites served with their files: what ``smartcity sim modbus``, ``sim air``,
``sim opcua`` and ``sim many`` run.

Each kind of site is served by its module's own server function
(:func:`.substation.serve_substation`, :func:`.air_quality.serve_air_quality`,
:func:`.water_station.serve_water_station`); this module writes the files an agent needs
into the site's folder once it listens (the device profile(s) and, for a water station, the
certificates) and says so, a line at a time, through ``say``.

:func:`serve_sites` runs several sites in one process, each still on its own port and taking
faults through its own protocol: simulated field equipment is a stand-in, and one Python
process for all of it costs a fraction of one process each (an OPC-UA server's address
space is the only large part of a site). Every line a site says starts with its name, so
that whoever reads the output (``smartcity up``) sees each site become ready on its own.

What a site is, and a plan file of them, is :mod:`.plan` (its names are importable from
here too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from smartcity.agents.sim.plan import (
    AirSite,
    SimPlan,
    SiteSpec,
    SubstationSite,
    WaterSite,
    check_site,
    load_plan,
)

__all__ = [
    "AirSite",
    "SimPlan",
    "SiteError",
    "SiteSpec",
    "SubstationSite",
    "WaterSite",
    "check_site",
    "load_plan",
    "serve_site",
    "serve_sites",
]

Say = Callable[[str], None]
"""Prints one line of rich markup."""


class SiteError(RuntimeError):
    """A site of :func:`serve_sites` could not listen, or its server failed; the message
    names the site."""


def _dump(path: Path, document: dict[str, Any], header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(f"# {header}\n{text}", encoding="utf-8")


async def serve_site(
    spec: SubstationSite | AirSite | WaterSite, stop: asyncio.Event, say: Say
) -> None:
    """Serve ``spec`` until ``stop`` is set, its files written and its lines said once it
    listens. Raises ``OSError`` when it cannot listen."""
    if isinstance(spec, SubstationSite):
        await _substation(spec, stop, say)
    elif isinstance(spec, AirSite):
        await _air(spec, stop, say)
    else:
        await _water(spec, stop, say)


async def serve_sites(
    specs: Sequence[SubstationSite | AirSite | WaterSite],
    stop: asyncio.Event,
    say: Say,
) -> None:
    """Serve every site of ``specs`` until ``stop`` is set; every line a site says starts
    with its name, and once all listen, ``N simulators ready``.

    A site that cannot listen, or whose server fails, ends them all with
    :class:`SiteError`, so that a supervisor restarts the whole process rather than keep a
    site silently gone. Raises :class:`InvalidArgument` for a site refused before anything
    listens.
    """
    from rich.markup import escape

    for spec in specs:
        check_site(spec)
    pending = {spec.name for spec in specs}
    all_ready = asyncio.Event()

    def said_by(spec: SubstationSite | AirSite | WaterSite) -> Say:
        prefix = f"{escape(spec.name)}: "

        def say_line(text: str) -> None:
            say(prefix + text)
            if spec.name in pending:  # its first line is its ready line
                pending.discard(spec.name)
                if not pending:
                    all_ready.set()

        return say_line

    async def announce() -> None:
        await all_ready.wait()
        say(f"{len(specs)} simulators ready")

    async def run(spec: SubstationSite | AirSite | WaterSite) -> None:
        try:
            await serve_site(spec, stop, said_by(spec))
        except Exception as exc:
            raise SiteError(f"{spec.name} on {spec.host}:{spec.port}: {exc}") from exc
        if not stop.is_set():  # a server that ended by itself
            raise SiteError(f"{spec.name}: the simulator ended by itself")

    tasks = [asyncio.create_task(run(spec), name=spec.name) for spec in specs]
    announcing = asyncio.create_task(announce())
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()  # the first failure, if any
    finally:
        announcing.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, announcing, return_exceptions=True)


# -- each kind ---------------------------------------------------------------------------------


async def _substation(spec: SubstationSite, stop: asyncio.Event, say: Say) -> None:
    from rich.markup import escape

    from smartcity.agents.sim.substation import Substation, serve_substation

    def ready(simulator: Substation) -> None:
        written = []
        for unit in simulator.units:
            document = simulator.profile_for(unit).model_dump(mode="json", exclude_defaults=True)
            document["protocol"] = "modbus"
            path = spec.out / f"substation-unit{unit}.yaml"
            _dump(path, document, f"Simulated substation bay on unit id {unit}")
            written.append(path)
        endpoint = f"tcp://{simulator.host}:{simulator.port}"
        say(
            f"[green]Substation simulator ready[/green] on {endpoint}, "
            f"unit ids {simulator.units[0]}..{simulator.units[-1]}"
        )
        if spec.serial_port:
            say(f"  Modbus RTU on {escape(spec.serial_port)} at {spec.baudrate} baud")
        say(f"  profiles: {escape(str(written[0].parent))}/substation-unit*.yaml")
        say(f"  read it:  smartcity agent check --profile {escape(str(written[0]))}")
        say(f"  fault:    smartcity sim fault {endpoint} voltage_sag --seconds 30")

    await serve_substation(
        spec.host,
        spec.port,
        devices=spec.devices,
        serial_port=spec.serial_port,
        baudrate=spec.baudrate,
        period=spec.period,
        seed=spec.seed,
        stop_event=stop,
        on_ready=ready,
    )


async def _air(spec: AirSite, stop: asyncio.Event, say: Say) -> None:
    from rich.markup import escape

    from smartcity.agents.sim.air_quality import (
        DEFAULT_SITE,
        AirQualityStation,
        serve_air_quality,
    )

    site = spec.site or DEFAULT_SITE

    def ready(station: AirQualityStation) -> None:
        path = spec.out / "air-quality-station.yaml"
        _dump(path, station.document(), "Simulated air-quality station (smartcity sim air)")
        endpoint = f"tcp://{station.host}:{station.port}"
        say(
            f"[green]Air-quality station simulator ready[/green] on {endpoint}, "
            f"site {escape(site)}, unit id {station.units[0]}"
        )
        say(f"  profile:  {escape(str(path))}")
        say(f"  read it:  smartcity agent check --profile {escape(str(path))}")
        say(
            f"  fault:    smartcity sim fault {endpoint} pollution_episode --seconds 3600 "
            "(the hourly VN_AQI rules judge it at the end of the hour)"
        )

    await serve_air_quality(
        spec.host,
        spec.port,
        period=spec.period,
        seed=spec.seed,
        site=site,
        stop_event=stop,
        on_ready=ready,
    )


async def _water(spec: WaterSite, stop: asyncio.Event, say: Say) -> None:
    from rich.markup import escape

    from smartcity.agents.opcua.certificates import default_application_uri, generate_certificate
    from smartcity.agents.sim.water_station import CERT_FILE, WaterStation, serve_water_station

    shipped = resources.files("smartcity.agents.sim.profiles") / "water_station.yaml"
    certs = spec.out / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    agent_cert, agent_key = certs / "agent.der", certs / "agent.pem"
    if not agent_cert.exists():
        # An RSA key takes a moment: off the event loop, so the other sites keep serving.
        await asyncio.to_thread(
            generate_certificate,
            agent_cert,
            agent_key,
            application_uri=default_application_uri("agent"),
            role="client",
        )
    modes: tuple[Literal["None", "Sign", "SignAndEncrypt"], ...] = ("Sign", "SignAndEncrypt")
    if spec.allow_none:
        modes = ("None", *modes)

    def ready(station: WaterStation) -> None:
        trusted = spec.out / "trusted-servers"  # the profile's trust folder: the agent's
        trusted.mkdir(parents=True, exist_ok=True)
        (trusted / CERT_FILE).write_bytes((certs / CERT_FILE).read_bytes())
        document = yaml.safe_load(shipped.read_text(encoding="utf-8"))
        document["endpoint"] = station.url
        document["security"].update(cert="certs/agent.der", key="certs/agent.pem")
        path = spec.out / "water-station.yaml"
        _dump(path, document, "Simulated water station (smartcity sim opcua)")
        say(f"[green]Water station simulator ready[/green] at {station.url}")
        say(f"  security: Basic256Sha256 {' and '.join(modes)}")
        say(f"  profile:  {escape(str(path))} (agent certificate in {escape(str(certs))})")
        say(f"  read it:  smartcity agent check --profile {escape(str(path))}")
        say(
            f"  fault:    smartcity sim fault {station.url} turbidity_spike --seconds 60 "
            f"--cert {escape(str(agent_cert))} --key {escape(str(agent_key))}"
        )

    await serve_water_station(
        spec.host,
        spec.port,
        stop_event=stop,
        on_ready=ready,
        modes=modes,
        certificate_dir=certs,
        trusted_certificates=[agent_cert],
        seed=spec.seed,
    )
