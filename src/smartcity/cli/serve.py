"""``smartcity serve <service>``: one of the platform's services in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from smartcity.cli.errors import fail

serve_app = typer.Typer(
    name="serve", help="Run one of the platform's services in the foreground.", no_args_is_help=True
)


@serve_app.command("monitoring")
def serve_monitoring(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", dir_okay=False, help="YAML configuration."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="gRPC port; 0 picks a free one (default: grpc.port, else 50051).",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="sqlite:///path.db or postgresql://user@host/db (default: monitoring.store_url)",
        ),
    ] = None,
    nats: Annotated[
        str | None, typer.Option("--nats", help="NATS URL; an embedded server if unset.")
    ] = None,
) -> None:
    """Ingest every reading from NATS into time-series storage and serve the monitoring API
    (latest values, ranges, live streams, devices and their health, field KPIs).

    gRPC health reports NOT_SERVING, with the reason in the log, while NATS, the storage or
    ingest cannot make progress; SIGINT/SIGTERM stop it gracefully."""
    from smartcity import __version__
    from smartcity.fields import FieldHostError
    from smartcity.runtime.bus import BusError
    from smartcity.runtime.config import ConfigError, load_settings
    from smartcity.runtime.grpc_server import GrpcServerError
    from smartcity.runtime.nats_server import NatsServerError
    from smartcity.runtime.service import Running, serve
    from smartcity.services.monitoring.app import MONITORING
    from smartcity.services.monitoring.store import StoreError

    try:
        settings = load_settings(
            config,
            grpc={"port": port} if port is not None else None,
            monitoring={"store_url": store} if store else None,
            nats={"url": nats} if nats else None,
        )
    except ConfigError as exc:
        fail(exc, 2)
    console = Console(soft_wrap=True)

    def ready(where: Running) -> None:
        console.print(f"[green]monitoring ready[/green]: gRPC {where.grpc_address}")
        console.print(f"  NATS    {where.nats_url}", highlight=False)
        for name, value in where.details.items():
            console.print(f"  {name:<7} {value}", highlight=False)

    try:
        serve(MONITORING, settings, version=__version__, on_ready=ready)
    except (
        StoreError,
        FieldHostError,
        BusError,
        NatsServerError,
        GrpcServerError,
        OSError,
    ) as exc:
        fail(exc)
    console.print("monitoring stopped.")
