"""``smartcity nats``: the embedded JetStream server in the foreground.

For development and for a single machine that runs the other processes separately: they
connect with ``SMARTCITY_NATS__URL`` set to the URL printed here. With ``--auth DIR`` (the
folder ``smartcity identity nats-config`` wrote) the server admits only the users of that
authorization, and each process also sets ``SMARTCITY_NATS__CREDENTIALS_FILE``. Before it
says it is ready, it creates the platform's streams with the configured limits (as
``smartcity streams ensure`` does, as the admin user under ``--auth``), so that what agents
publish is stored with nothing else running.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from smartcity.cli.errors import fail
from smartcity.cli.streams import ensured_summary
from smartcity.runtime.bus import Bus, BusError
from smartcity.runtime.config import ConfigError, NatsSettings, StreamsSettings, load_settings
from smartcity.runtime.logs import setup_logging
from smartcity.runtime.nats_auth.plan import ADMIN_USER
from smartcity.runtime.nats_auth.render import (
    AUTHORIZATION_FILE,
    CREDENTIALS_DIR,
    credentials_path,
)
from smartcity.runtime.nats_server import EmbeddedNats, NatsServerError
from smartcity.runtime.streams import provision_streams

#: The port NATS clients try when given no URL; used unless a flag or the configuration
#: names another, because a server people connect to by hand should not move.
DEFAULT_PORT = 4222


def nats_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="YAML configuration file (default: $SMARTCITY_CONFIG); its nats section applies.",
            dir_okay=False,
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: nats.host, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help=f"Client port; 0 picks a free one (default: nats.port, else {DEFAULT_PORT}).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            file_okay=False,
            help="Folder for JetStream storage and the server log (default: nats.data_dir).",
        ),
    ] = None,
    monitor_port: Annotated[
        int | None,
        typer.Option(
            "--monitor-port",
            min=0,
            max=65535,
            help="HTTP monitoring port (/healthz, /varz, /jsz); 0 picks a free one (default: off).",
        ),
    ] = None,
    auth: Annotated[
        Path | None,
        typer.Option(
            "--auth",
            file_okay=False,
            help="Folder written by `smartcity identity nats-config`: the server then admits "
            "only its users, each with its permissions (default: no authorization).",
        ),
    ] = None,
) -> None:
    """Run a NATS server with JetStream in the foreground until Ctrl-C or SIGTERM.

    The platform's streams are created (or brought up to date) with the configured limits
    before the server is announced ready.
    """
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)

    overrides: dict[str, Any] = {
        key: value
        for key, value in (("host", host), ("port", port), ("data_dir", data_dir))
        if value is not None
    }
    try:
        everything = load_settings(config, nats=overrides or None)
    except ConfigError as exc:
        fail(exc, 2)
    setup_logging(everything.logging, service="nats")
    settings = everything.nats
    if "port" not in settings.model_fields_set:
        settings = settings.model_copy(update={"port": DEFAULT_PORT})
    if auth is not None:
        settings = _with_authorization(settings, auth)

    server = EmbeddedNats(settings, monitor_port=monitor_port)
    signalled = threading.Event()
    wake = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        signalled.set()
        wake.set()
        # Also interrupts a start still waiting for readiness; stop() is idempotent.
        threading.Thread(target=server.stop, name="smartcity-nats-stop", daemon=True).start()

    def watch() -> None:
        server.wait()
        wake.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            server.start()
        except NatsServerError as exc:
            if signalled.is_set():
                return
            fail(exc)
        try:
            streams = _create_streams(server, everything.nats.streams)
        except BusError as exc:
            if signalled.is_set():
                return
            fail(f"NATS started but the platform's streams could not be made: {exc}")
        _print_endpoints(out, server, streams)
        threading.Thread(target=watch, name="smartcity-nats-watch", daemon=True).start()
        wake.wait()
        if not signalled.is_set():
            err.print(
                f"[red]error:[/red] nats-server exited on its own with code {server.wait()}; "
                f"last lines of {escape(str(server.log_file))}:"
            )
            err.print(escape(server.log_tail()), highlight=False)
            raise typer.Exit(1)
        out.print("Stopping NATS...")
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.print("NATS stopped.")


def _with_authorization(settings: NatsSettings, folder: Path) -> NatsSettings:
    """``settings`` for a server that loads ``folder``'s authorization and for this
    command's own connection, which provisions the streams as the admin user."""
    authorization = folder / AUTHORIZATION_FILE
    admin = credentials_path(folder, ADMIN_USER)
    missing = [str(path) for path in (authorization, admin) if not path.is_file()]
    if missing:
        fail(
            f"{', '.join(missing)} not found: write them with "
            f"`smartcity identity nats-config --out {folder}`",
            2,
        )
    return settings.model_copy(
        update={
            "authorization_file": authorization,
            "credentials_file": admin,
            "user": None,
            "password": None,
        }
    )


def _create_streams(server: EmbeddedNats, streams: StreamsSettings) -> str:
    """Create the platform's streams on ``server``; a line saying what was done."""

    async def ensure() -> str:
        async with await Bus.connect(server.client_settings(), name="smartcity-nats") as bus:
            return ensured_summary(await provision_streams(bus, streams))

    return asyncio.run(ensure())


def _print_endpoints(out: Console, server: EmbeddedNats, streams: str) -> None:
    out.print(f"[green]NATS with JetStream is ready[/green] ({server.settings.name})")
    out.print(f"  client URL   [bold]{server.url}[/bold]", highlight=False)
    out.print(f"  streams      {escape(streams)}", highlight=False)
    if server.monitor_url is not None:
        out.print(f"  monitoring   [bold]{server.monitor_url}[/bold]", highlight=False)
    authorization = server.settings.authorization_file
    if authorization is not None:
        credentials = Path(authorization).parent / CREDENTIALS_DIR
        out.print(f"  users        {escape(str(authorization))}", highlight=False)
        out.print(
            "  credentials  SMARTCITY_NATS__CREDENTIALS_FILE="
            f"{escape(str(credentials))}/<user>.yaml",
            highlight=False,
        )
    out.print(f"  data folder  {escape(str(server.data_dir))}", highlight=False)
    out.print(f"  log          {escape(str(server.log_file))}", highlight=False)
    out.print(f"  pid          {server.pid}", highlight=False)
    out.print(
        f"Other processes connect with [bold]SMARTCITY_NATS__URL={server.url}[/bold]; "
        "press Ctrl-C to stop.",
        highlight=False,
    )
