"""``smartcity serve <service>``: one of the platform's services in the foreground.

Every service is started the same way (:func:`_serve`): the configuration with the command's
options laid over it, the runtime's :func:`~smartcity.runtime.service.serve`, a line saying
where it listens once it is ready, and any failure to start put in one sentence. Each command
adds only its own options and words."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from smartcity.cli.errors import fail

serve_app = typer.Typer(
    name="serve", help="Run one of the platform's services in the foreground.", no_args_is_help=True
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", dir_okay=False, help="YAML configuration.")
]
NatsOption = Annotated[
    str | None, typer.Option("--nats", help="NATS URL; an embedded server if unset.")
]


def _port(default: int) -> Any:
    return typer.Option(
        min=0,
        max=65535,
        help=f"gRPC port; 0 picks a free one (default: grpc.port, else {default}).",
    )


def _store(service: str) -> Any:
    return typer.Option(
        "--store",
        help=f"sqlite:///path.db or postgresql://user@host/db (default: {service}.store_url)",
    )


def _serve(
    service: str,
    spec: str,
    *,
    config: Path | None,
    port: int | None,
    nats: str | None,
    section: dict[str, Any],
) -> None:
    """Run the service ``spec`` (``module:NAME``) with the options given on the command line
    (``section``: values for the service's own settings section)."""
    from smartcity import __version__
    from smartcity.fields import FieldHostError
    from smartcity.runtime.bus import BusError
    from smartcity.runtime.config import ConfigError, load_settings
    from smartcity.runtime.errors import DomainError
    from smartcity.runtime.grpc_server import GrpcServerError
    from smartcity.runtime.nats_server import NatsServerError
    from smartcity.runtime.service import Running, serve
    from smartcity.runtime.storage import StoreError

    try:
        settings = load_settings(
            config,
            grpc={"port": port} if port is not None else None,
            nats={"url": nats} if nats else None,
            **{service: section or None},
        )
    except ConfigError as exc:
        fail(exc, 2)
    module, _, name = spec.partition(":")
    service_spec = getattr(importlib.import_module(module), name)
    console = Console(soft_wrap=True)

    def ready(where: Running) -> None:
        console.print(f"[green]{service} ready[/green]: gRPC {where.grpc_address}")
        console.print(f"  NATS    {where.nats_url}", highlight=False)
        for detail, value in where.details.items():
            console.print(f"  {detail:<7} {value}", highlight=False)

    try:
        serve(service_spec, settings, version=__version__, on_ready=ready)
    except (
        StoreError,
        FieldHostError,
        BusError,
        NatsServerError,
        GrpcServerError,
        OSError,
        DomainError,  # e.g. stored signing keys the configured passphrase cannot open
    ) as exc:
        fail(exc)
    console.print(f"{service} stopped.")


def _stored(store: str | None) -> dict[str, Any]:
    return {"store_url": store} if store else {}


@serve_app.command("monitoring")
def serve_monitoring(
    config: ConfigOption = None,
    port: Annotated[int | None, _port(50051)] = None,
    store: Annotated[str | None, _store("monitoring")] = None,
    nats: NatsOption = None,
) -> None:
    """Ingest every reading from NATS into time-series storage and serve the monitoring API
    (latest values, ranges, live streams, devices and their health, field KPIs).

    gRPC health reports NOT_SERVING, with the reason in the log, while NATS, the storage or
    ingest cannot make progress; SIGINT/SIGTERM stop it gracefully."""
    _serve(
        "monitoring",
        "smartcity.services.monitoring.app:MONITORING",
        config=config,
        port=port,
        nats=nats,
        section=_stored(store),
    )


@serve_app.command("identity")
def serve_identity(
    config: ConfigOption = None,
    port: Annotated[int | None, _port(50053)] = None,
    http_port: Annotated[
        int | None,
        typer.Option("--http-port", min=0, max=65535, help="JWKS/discovery port (8053)."),
    ] = None,
    store: Annotated[str | None, _store("identity")] = None,
    nats: NatsOption = None,
) -> None:
    """Serve the identity API (principals, login, roles, tokens), the key set at
    /.well-known/jwks.json and the identity events on city.identity.<event>."""
    section = _stored(store)
    if http_port is not None:
        section["http_port"] = http_port
    _serve(
        "identity",
        "smartcity.services.identity.app:IDENTITY",
        config=config,
        port=port,
        nats=nats,
        section=section,
    )


@serve_app.command("records")
def serve_records(
    config: ConfigOption = None,
    port: Annotated[int | None, _port(50052)] = None,
    store: Annotated[str | None, _store("records")] = None,
    nats: NatsOption = None,
) -> None:
    """Serve the records API (typed, versioned records with history, access control and
    events on city.records.<type>.<event>).

    gRPC health reports NOT_SERVING, with the reason in the log, while NATS or the storage
    is down or events wait in the outbox; SIGINT/SIGTERM stop it gracefully."""
    _serve(
        "records",
        "smartcity.services.records.app:RECORDS",
        config=config,
        port=port,
        nats=nats,
        section=_stored(store),
    )


@serve_app.command("alerts")
def serve_alerts(
    config: ConfigOption = None,
    port: Annotated[int | None, _port(50054)] = None,
    store: Annotated[str | None, _store("alerts")] = None,
    nats: NatsOption = None,
) -> None:
    """Evaluate alert rules on every reading from NATS, keep the alerts' lifecycle, publish
    alert events on city.alerts.<field>.<severity> and serve the alerts API.

    gRPC health reports NOT_SERVING, with the reason in the log, while NATS, the storage or
    evaluation cannot make progress; SIGINT/SIGTERM stop it gracefully."""
    _serve(
        "alerts",
        "smartcity.services.alerts.app:ALERTS",
        config=config,
        port=port,
        nats=nats,
        section=_stored(store),
    )
