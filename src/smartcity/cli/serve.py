"""``smartcity serve <service>``: one of the platform's services in the foreground."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from smartcity.cli.errors import fail
from smartcity.cli.foreground import run_until_signalled

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
            min=0, max=65535, help="gRPC port; 0 picks a free one (default: grpc.port, else 50051)."
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
    (latest values, ranges, live streams, devices and their health, field KPIs)."""
    from smartcity import __version__
    from smartcity.fields import FieldHostError
    from smartcity.runtime.config import ConfigError, load_settings
    from smartcity.runtime.logs import setup_logging
    from smartcity.runtime.observability import setup_observability
    from smartcity.services.monitoring.app import Running, run_monitoring
    from smartcity.services.monitoring.server import DEFAULT_PORT
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
    if port is None and "port" not in settings.grpc.model_fields_set:
        settings = settings.model_copy(
            update={"grpc": settings.grpc.model_copy(update={"port": DEFAULT_PORT})}
        )
    setup_logging(settings.logging, service="monitoring")
    telemetry = setup_observability(
        settings.telemetry, service_name="smartcity-monitoring", service_version=__version__
    )
    console = Console(soft_wrap=True)

    def ready(where: Running) -> None:
        console.print(f"[green]monitoring ready[/green]: gRPC {where.grpc_address}")
        console.print(f"  NATS    {where.nats_url}", highlight=False)
        console.print(f"  storage {where.store_url}", highlight=False)

    async def main(stop: asyncio.Event) -> None:
        await run_monitoring(settings, stop, on_ready=ready)

    try:
        run_until_signalled(main)
    except (StoreError, FieldHostError, OSError) as exc:
        fail(exc)
    finally:
        telemetry.shutdown()
    console.print("monitoring stopped.")
