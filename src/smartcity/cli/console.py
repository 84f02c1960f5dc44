"""``smartcity console``: the IOC console, a browser front end over the four services, in the
foreground.

It prints ``Console ready at http://HOST:PORT`` once it listens (a supervisor such as
``smartcity up`` waits for that line) and stops cleanly on SIGINT/SIGTERM: live streams end,
logged-in sessions are logged out at identity.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from smartcity.cli.errors import fail


def _target(service: str) -> object:
    return typer.Option(
        f"--{service}",
        help=f"The {service} service's gRPC host:port (default: 127.0.0.1 and its default port).",
    )


def console_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="HTTP port; 0 picks a free one.")
    ] = 8080,
    identity: Annotated[str | None, _target("identity")] = None,
    monitoring: Annotated[str | None, _target("monitoring")] = None,
    records: Annotated[str | None, _target("records")] = None,
    alerts: Annotated[str | None, _target("alerts")] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            help="Another origin (scheme://host[:port]) whose pages may send changes, e.g. a "
            "reverse proxy's public name; repeatable.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            dir_okay=False,
            help="YAML configuration (default: $SMARTCITY_CONFIG); its logging, telemetry and "
            "grpc sections apply.",
        ),
    ] = None,
) -> None:
    """Serve the IOC console: fields and KPIs, a map of the sites, live device values and
    health, alerts to acknowledge, assign and silence, charts. Every call to the services
    carries the logged-in user's own token."""
    from smartcity import __version__
    from smartcity.runtime.config import ConfigError, load_settings
    from smartcity.runtime.foreground import run_until_signalled
    from smartcity.runtime.logs import setup_logging
    from smartcity.runtime.observability import setup_observability
    from smartcity.services.console.app import ConsoleServer, PortInUseError
    from smartcity.services.console.settings import ConsoleSettings, Targets

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(exc, 2)
    given = {"identity": identity, "monitoring": monitoring, "records": records, "alerts": alerts}
    for name, target in given.items():
        if target is not None and (":" not in target or not target.rsplit(":", 1)[1].isdigit()):
            fail(f"--{name} {target!r}: expected host:port", 2)
    for origin in allow_origin or ():
        if not re.fullmatch(r"https?://[^/\s]+", origin):
            fail(f"--allow-origin {origin!r}: expected scheme://host[:port]", 2)
    targets = Targets.defaults(**given)
    setup_logging(settings.logging, service="console")
    try:
        console_settings = ConsoleSettings(
            targets=targets, grpc=settings.grpc, allowed_origins=tuple(allow_origin or ())
        )
        server = ConsoleServer(console_settings, host, port)
    except PortInUseError:
        fail(f"port {port} on {host} is already in use; choose another with --port")
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host and --port")
    telemetry = setup_observability(
        settings.telemetry, service_name="smartcity-console", service_version=__version__
    )

    def ready(url: str) -> None:
        typer.echo(f"Console ready at {url}")

    try:
        run_until_signalled(lambda stop: server.run(stop, on_ready=ready))
    finally:
        telemetry.shutdown()
    typer.echo("Console stopped.")
