"""``smartcity agent``: read field devices and publish their readings to NATS.

``smartcity agent --profile FILE...`` runs an agent; ``agent check`` is the commissioning
tool (validate a profile, connect, read once, show what was decoded); ``agent cert`` makes
the OPC-UA application certificate an agent presents to secured servers.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.cli.errors import fail
from smartcity.runtime.foreground import run_until_signalled

agent_app = typer.Typer(
    name="agent",
    invoke_without_command=True,
)

ProfileOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--profile",
        "-p",
        exists=True,
        dir_okay=False,
        help="Device profile (YAML); repeat for several devices.",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", dir_okay=False, help="YAML configuration (default: $SMARTCITY_CONFIG)."
    ),
]

log = logging.getLogger(__name__)


def _load_profiles(paths: list[Path]) -> list:
    from smartcity.agents.profile import ProfileError, load_profile
    from smartcity.fields import FieldHostError, load_fields

    try:
        known = [field.id for field in load_fields()]
    except FieldHostError as exc:
        fail(exc)
    profiles, problems = [], []
    for path in paths:
        try:
            profiles.append(load_profile(path, known_fields=known))
        except ProfileError as exc:
            problems.append(str(exc))
    if problems:
        fail("\n".join(problems), 2)
    return profiles


@agent_app.callback()
def agent_run(
    ctx: typer.Context,
    profile: ProfileOption = None,
    nats: Annotated[
        str | None, typer.Option("--nats", help="NATS URL (default: nats.url).")
    ] = None,
    agent_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Agent id, which also names its disk buffer (default: agent.id, else the host "
            "name and a hash of the devices).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Spread the devices over this many processes (one core each), each an agent "
            "of its own named <id>-<k>of<N>, with its own buffer and heartbeat.",
        ),
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Run an agent for the devices of --profile until Ctrl-C or SIGTERM.

    Readings go through an on-disk buffer (agent.buffer_dir) and are deleted only when
    JetStream has acknowledged them; what is not yet sent survives restarts.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not profile:
        Console(stderr=True).print(ctx.get_help())
        fail("give at least one --profile FILE", 2)
    from smartcity import __version__
    from smartcity.agents.agent import Agent, AgentError
    from smartcity.runtime.config import ConfigError, load_settings
    from smartcity.runtime.logs import setup_logging
    from smartcity.runtime.observability import setup_observability

    try:
        settings = load_settings(config, agent={"id": agent_id} if agent_id else None)
    except ConfigError as exc:
        fail(exc, 2)
    profiles = _load_profiles(profile)
    setup_logging(settings.logging, service="agent")
    try:
        agent = Agent(profiles, settings, nats_url=nats)
    except AgentError as exc:
        fail(exc, 2)
    if workers > 1:
        _run_workers(agent, profile, workers, nats, config)
        return
    telemetry = setup_observability(
        settings.telemetry, service_name="smartcity-agent", service_version=__version__
    )
    try:
        run_until_signalled(agent.run)
    except AgentError as exc:
        fail(exc, 2)
    finally:
        telemetry.shutdown()


def _run_workers(
    agent: Any, paths: list[Path], count: int, nats: str | None, config: Path | None
) -> None:
    """The devices spread over ``count`` agent processes under one supervisor."""
    from smartcity.agents.workers import Supervisor, Worker, split, worker_id

    groups = split(agent.profiles, count)
    pool = [
        Worker(worker_id(agent.agent_id, index, len(groups)), [paths[i] for i in group])
        for index, group in enumerate(groups, start=1)
    ]
    arguments = ["--nats", agent.url]
    if config is not None:
        arguments += ["--config", str(config)]
    log.info(
        "agent %s: %d device(s) in %d worker process(es): %s",
        agent.agent_id,
        len(paths),
        len(pool),
        ", ".join(f"{worker.agent_id} ({len(worker.profiles)})" for worker in pool),
    )
    supervisor = Supervisor(
        pool, arguments, drain_timeout=agent.settings.agent.drain_timeout_seconds
    )
    run_until_signalled(supervisor.run)
    if supervisor.failure is not None:
        fail(supervisor.failure, 2)


@agent_app.command("cert")
def agent_cert(
    out: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Folder for agent.der and agent.pem.")
    ] = Path("certs"),
    uri: Annotated[
        str | None,
        typer.Option(help="Application URI (default: urn:<host>:smartcity:agent)."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Validity in days.")] = 365,
    overwrite: Annotated[bool, typer.Option(help="Replace existing files.")] = False,
) -> None:
    """Create the agent's OPC-UA application certificate (DER) and private key (PEM).

    Give agent.der to the OPC-UA server's administrator to trust, and point the profile's
    security.cert and security.key at the two files.
    """
    from smartcity.agents.opcua.certificates import (
        CertificateError,
        default_application_uri,
        generate_certificate,
    )

    try:
        pair = generate_certificate(
            out / "agent.der",
            out / "agent.pem",
            application_uri=uri or default_application_uri("agent"),
            role="client",
            days=days,
            overwrite=overwrite,
        )
    except CertificateError as exc:
        fail(exc)
    Console().print(f"certificate {pair.cert}\nprivate key {pair.key}", highlight=False)


@agent_app.command("check")
def agent_check(
    profile: Annotated[
        Path,
        typer.Option("--profile", "-p", exists=True, dir_okay=False, help="Device profile."),
    ],
    orders: Annotated[
        bool,
        typer.Option(
            "--orders",
            help="Modbus: also decode every 32/64-bit point in all four orders "
            "(ABCD, CDAB, BADC, DCBA), to find the one the device uses.",
        ),
    ] = False,
    agent_id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Id of the agent whose disk buffer to check (default: as the agent)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Validate a profile, connect, read every point once and show the decoded values.

    The commissioning tool: for Modbus it also shows each point's raw registers, so a wrong
    byte or word order shows at a glance. It also says whether the agent's disk buffer can be
    written (a lock held by another process or a full disk stops it). Exits 1 when a point is
    not read as good or the buffer cannot be written.
    """
    (device,) = _load_profiles([profile])
    buffer_ok = _check_buffer(device, agent_id, config)
    from smartcity.agents.driver import driver_for
    from smartcity.agents.modbus.driver import ModbusDriver

    async def read() -> tuple[list, dict, Any]:
        driver = driver_for(device)
        try:
            readings = await driver.read_once()
            raw = await driver.read_raw() if isinstance(driver, ModbusDriver) else {}
            return readings, raw, getattr(driver, "server_identity", None)
        finally:
            await driver.close()

    try:
        readings, raw, server = asyncio.run(read())
    except (OSError, ConnectionError, TimeoutError) as exc:
        fail(f"cannot read {device.endpoint}: {exc}")
    by_name = {reading.metric: reading for reading in readings}
    table = Table(title=f"{device.site}/{device.device} at {device.endpoint}")
    columns = ["point", "where", "raw", "value", "unit", "quality"]
    if not raw:
        columns.remove("raw")
    if orders and raw:
        columns += ["ABCD", "CDAB", "BADC", "DCBA"]
    for column in columns:
        table.add_column(column, justify="right" if column in ("value", "raw") else "left")
    bad = 0
    for point in device.points:
        reading = by_name.get(point.name)
        row = [point.name, escape(_where(point))]
        if raw:
            row.append(_hex(raw.get(point.name)))
        if reading is None:
            row += ["", point.unit, "[yellow]not read[/yellow]"]
            bad += 1
        else:
            quality = reading.quality.value + (f": {reading.reason}" if reading.reason else "")
            if reading.quality.value != "good":
                bad += 1
                quality = f"[red]{escape(quality)}[/red]"
            row += [_show(reading.value), point.unit, quality]
        if orders and raw:
            row += _all_orders(point, raw.get(point.name))
        table.add_row(*row)
    Console().print(table)
    if server is not None:  # the OPC-UA server's certificate, and why it was trusted
        Console().print(
            f"server certificate: thumbprint {server.thumbprint}, subject {server.subject}\n"
            f"trusted by: {server.trusted_by}",
            highlight=False,
            markup=False,
        )
    if getattr(getattr(device, "security", None), "trust_on_first_use", False):
        Console().print("trust on first use: on (a server not seen before is trusted as it is)")
    if bad or not buffer_ok:
        raise typer.Exit(1)


def _check_buffer(device: object, agent_id: str | None, config: Path | None) -> bool:
    """Print the state of the disk buffer the agent for ``device`` uses; False when an agent
    could not write to it now."""
    from smartcity.agents.agent import buffer_path, default_agent_id
    from smartcity.agents.buffer_state import inspect_buffer
    from smartcity.runtime.config import ConfigError, load_settings

    try:
        settings = load_settings(config, agent={"id": agent_id} if agent_id else None)
    except ConfigError as exc:
        fail(exc, 2)
    ident = settings.agent.id or default_agent_id([device])  # type: ignore[list-item]
    report = inspect_buffer(buffer_path(settings, ident))
    console = Console(highlight=False)
    where = escape(str(report.path))
    if not report.exists:
        console.print(f"disk buffer {where}: not created yet (agent {ident})")
        return True
    owner = f"held by the agent with pid {report.owner}" if report.owner else "no agent runs"
    console.print(
        f"disk buffer {where}: {owner}; {report.batches} batch(es) waiting, "
        f"{report.quarantined} quarantined, {report.dropped_batches} dropped when full"
    )
    if report.problem:
        console.print(f"[red]disk buffer not writable: {escape(report.problem)}[/red]")
        return False
    return True


def _show(value: object) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _hex(registers: list | None) -> str:
    if not registers:
        return ""
    if isinstance(registers[0], bool):
        return "1" if registers[0] else "0"
    return " ".join(f"{word:04X}" for word in registers)


def _all_orders(point: object, registers: list | None) -> list[str]:
    from smartcity.agents.modbus.codec import decode

    if not registers or isinstance(registers[0], bool) or point.width < 2:  # type: ignore[attr-defined]
        return ["", "", "", ""]
    cells = []
    for byte_order, word_order in _ORDERS:
        variant = point.model_copy(  # type: ignore[attr-defined]
            update={"byte_order": byte_order, "word_order": word_order}
        )
        cells.append(_show(decode(registers, variant)))
    return cells


@agent_app.command("templates")
def agent_templates(
    field: Annotated[str | None, typer.Argument(help="Only this field's templates.")] = None,
) -> None:
    """List the ready device profiles the field plugins bring (a substation bay meter, a
    water-quality analyser, ...); `agent template NAME` writes one out."""
    from smartcity.fields import FieldHostError, load_fields

    try:
        host = load_fields()
    except FieldHostError as exc:
        fail(exc)
    table = Table(title="device profile templates")
    for column in ("template", "field", "protocol", "points", "description"):
        table.add_column(column)
    for item in host:
        if field is not None and item.id != field:
            continue
        for template in item.device_profiles:
            table.add_row(
                template.name,
                item.id,
                str(template.profile["protocol"]),
                str(len(template.points)),
                template.description,
            )
    Console().print(table)


@agent_app.command("template")
def agent_template(
    name: Annotated[str, typer.Argument(help="Template name (see `agent templates`).")],
    site: Annotated[str, typer.Option(help="Site id, e.g. hoa-khanh-110kv.")],
    device: Annotated[str, typer.Option(help="Device id within the site, e.g. bay-1-meter.")],
    endpoint: Annotated[
        str, typer.Option(help="tcp://host:port, rtu:///dev/ttyUSB0?baudrate=9600 or opc.tcp://...")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", dir_okay=False, help="File to write (stdout).")
    ] = None,
) -> None:
    """Fill in a template with the deployment's site, device and endpoint; the result is
    checked like any profile before it is written."""
    import yaml

    from smartcity.agents.profile import ProfileError, parse_profile
    from smartcity.fields import load_fields

    host = load_fields()
    found = [(f, t) for f in host for t in f.device_profiles if t.name == name]
    if not found:
        known = ", ".join(sorted(t.name for f in host for t in f.device_profiles))
        fail(f"no template {name!r}; known: {known}", 2)
    (owner, template), *_ = found
    document = {"site": site, "field": owner.id, "device": device, "endpoint": endpoint}
    document.update(template.complete(**document))
    try:
        parse_profile(document, f"template {name}", known_fields=[f.id for f in host])
    except ProfileError as exc:
        fail(exc, 2)
    text = f"# {template.description}\n" + yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, width=100
    )
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        Console(stderr=True).print(f"wrote {out}", highlight=False)


_ORDERS = {
    ("big", "big"): "ABCD",
    ("big", "little"): "CDAB",
    ("little", "big"): "BADC",
    ("little", "little"): "DCBA",
}


def _where(point: object) -> str:
    """Where a point lives on the device, as the engineer wrote it in the profile."""
    node = getattr(point, "node", None)
    if node is not None:
        return str(node)
    text = f"{point.function} {point.address} {point.type}"  # type: ignore[attr-defined]
    if point.bit is not None:  # type: ignore[attr-defined]
        return f"{text} bit {point.bit}"  # type: ignore[attr-defined]
    if point.width > 1:  # type: ignore[attr-defined]
        text += " " + _ORDERS[(point.byte_order, point.word_order)]  # type: ignore[attr-defined]
    elif point.byte_order == "little":  # type: ignore[attr-defined]
        text += " BA"
    return text
