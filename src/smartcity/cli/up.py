"""``smartcity up``: the whole city on one machine, supervised, in the foreground.

The work is done by :mod:`smartcity.up`; this module turns the options into
:class:`~smartcity.up.city.UpOptions` and problems into one line and an exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from smartcity.cli.errors import fail

_PORTS = ("fixed", "auto", "0")


def up_command(
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            file_okay=False,
            help="Folder for everything the city keeps: stores, NATS, credentials, logs, "
            "city.json. A second run on it resumes.",
        ),
    ] = Path(".smartcity/city"),
    profiles: Annotated[
        Path | None,
        typer.Option(
            "--profiles",
            exists=True,
            file_okay=False,
            help="Real devices too: DIR/<agent-id>/*.yaml (one agent per folder) or DIR/*.yaml "
            "(one agent per site), as for `smartcity identity nats-config`.",
        ),
    ] = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--sim/--no-sim",
            help="Simulated substations, water stations and an air station, with their agents.",
        ),
    ] = True,
    duration: Annotated[
        float | None,
        typer.Option(min=0, help="Stop this many seconds after ready (default: at Ctrl-C)."),
    ] = None,
    ports: Annotated[
        str,
        typer.Option(
            "--ports",
            help="fixed: the defaults of the port options below; auto (or 0): a free port for "
            "every one not given.",
        ),
    ] = "fixed",
    host: Annotated[str, typer.Option(help="Address every process listens on.")] = "127.0.0.1",
    nats_port: Annotated[
        int | None, typer.Option("--nats-port", min=0, max=65535, help="NATS (default 4222).")
    ] = None,
    console_port: Annotated[
        int | None,
        typer.Option("--console-port", min=0, max=65535, help="The console (default 8080)."),
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            min=0,
            max=65532,
            help="First gRPC port: monitoring, records, identity, alerts from it (default 50051).",
        ),
    ] = None,
    identity_http_port: Annotated[
        int | None,
        typer.Option(
            "--identity-http-port", min=0, max=65535, help="Identity's key set (default 8053)."
        ),
    ] = None,
    sim_port: Annotated[
        int | None,
        typer.Option(
            "--sim-port",
            min=0,
            max=65530,
            help="First simulator port, one per site (default 5020).",
        ),
    ] = None,
    with_faults: Annotated[
        bool,
        typer.Option(
            "--faults/--no-faults",
            help="Inject a fault at one site after another, so that alerts fire and resolve.",
        ),
    ] = True,
    fault_interval: Annotated[
        float, typer.Option("--fault-interval", min=10, help="Seconds between faults.")
    ] = 120.0,
    ready_timeout: Annotated[
        float,
        typer.Option("--ready-timeout", min=1, help="Seconds each process may take to start."),
    ] = 60.0,
    stop_timeout: Annotated[
        float,
        typer.Option(
            "--stop-timeout", min=0.1, help="Seconds a process has after SIGTERM before SIGKILL."
        ),
    ] = 10.0,
) -> None:
    """Start the whole city on this machine: NATS with JetStream, the identity, records,
    monitoring and alerts services, simulated stations in Da Nang with an edge agent each,
    and the console; keep them running until Ctrl-C, SIGTERM or --duration.

    Every process gets its own NATS user and credentials, every service checks identity's
    tokens, and a process that crashes is restarted. The first run creates the ioc.admin and
    ioc.operator accounts (passwords from SMARTCITY_ADMIN_PASSWORD and
    SMARTCITY_OPERATOR_PASSWORD, or generated and shown once); a later run on the same
    --data-dir resumes with its data. Where everything listens is printed and written to
    DATA_DIR/city.json; logs are in DATA_DIR/logs.
    """
    import asyncio

    from smartcity.runtime.errors import DomainError, InvalidArgument
    from smartcity.runtime.foreground import run_until_signalled
    from smartcity.up.city import UpOptions, run_city

    if ports not in _PORTS:
        fail(f"--ports must be one of {', '.join(_PORTS)}, not {ports!r}", 2)
    options = UpOptions(
        data_dir=data_dir,
        profiles=profiles,
        simulate=simulate,
        duration=duration,
        host=host,
        auto_ports=ports in ("auto", "0"),
        nats_port=nats_port,
        console_port=console_port,
        grpc_port=grpc_port,
        identity_http_port=identity_http_port,
        sim_port=sim_port,
        faults=with_faults,
        fault_interval=fault_interval,
        ready_timeout=ready_timeout,
        stop_timeout=stop_timeout,
    )
    out = Console(soft_wrap=True)
    code = 0

    async def main(stop: asyncio.Event) -> None:
        nonlocal code
        code = await run_city(options, out, stop)

    try:
        run_until_signalled(main)
    except DomainError as exc:
        fail(exc.message, 2 if isinstance(exc, InvalidArgument) else 1)
    raise typer.Exit(code)
