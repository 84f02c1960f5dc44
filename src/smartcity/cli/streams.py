"""``smartcity streams``: the platform's JetStream streams, created and inspected.

``streams ensure`` creates the streams from the configuration, or brings their limits up to
date, on any NATS server: without them, what agents publish is stored nowhere.
``streams status`` shows what each stream holds and how far behind each consumer is.
Streams are the platform's to create (this command, ``smartcity nats``, later
``smartcity up`` and the operator); agents only publish. The work is done by
:mod:`smartcity.runtime.streams`; this module only presents it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.cli.errors import fail
from smartcity.runtime.bus import Bus, BusError, EnsuredStreams
from smartcity.runtime.config import ConfigError, LoggingSettings, Settings, load_settings
from smartcity.runtime.logs import setup_logging
from smartcity.runtime.streams import (
    StreamStatus,
    limits_of,
    provision_streams,
    server_of,
    stream_status,
)

streams_app = typer.Typer(
    name="streams",
    help="The platform's JetStream streams: create them from the configuration, show their state.",
    no_args_is_help=True,
)

NatsOption = Annotated[
    str | None,
    typer.Option("--nats", help="NATS URL, e.g. nats://127.0.0.1:4222 (default: nats.url)."),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        dir_okay=False,
        help="YAML configuration (default: $SMARTCITY_CONFIG): nats.url; nats.streams, the limits.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]

_T = TypeVar("_T")


# -- commands ----------------------------------------------------------------------------------


@streams_app.command("ensure")
def ensure_command(nats: NatsOption = None, config: ConfigOption = None) -> None:
    """Create the platform's streams, or bring their limits up to date with the configuration.

    Safe to run again: a stream already as configured is left alone, its messages kept.
    """
    settings, url = _settings(config, nats)

    async def ensure(bus: Bus) -> EnsuredStreams:
        return await provision_streams(bus, settings.nats.streams)

    ensured, server = _run(settings, url, ensure)
    console = Console(soft_wrap=True)
    console.print(f"JetStream streams on [bold]{escape(server)}[/bold]", highlight=False)
    console.print(ensured_table(ensured))


@streams_app.command("status")
def status_command(
    nats: NatsOption = None, config: ConfigOption = None, json_output: JsonOption = False
) -> None:
    """Each platform stream's messages, bytes, first and last message, and each consumer's
    lag: pending (not yet delivered), waiting for an acknowledgement, redelivered.

    Exits 1 when a stream is missing, naming the command that creates it.
    """
    settings, url = _settings(config, nats)
    streams, server = _run(settings, url, stream_status)
    missing = [stream.name for stream in streams if not stream.exists]
    fix = f"smartcity streams ensure --nats {server}"
    if json_output:
        document = {
            "server": server,
            "streams": [stream.to_json() for stream in streams],
            "missing": missing,
            "fix": fix if missing else None,
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        console = Console(soft_wrap=True)
        console.print(f"JetStream streams on [bold]{escape(server)}[/bold]", highlight=False)
        console.print(_streams_table(streams))
        console.print(_consumers_table(streams))
    if missing:
        fail(
            f"{len(missing)} of {len(streams)} platform stream(s) missing "
            f"({', '.join(missing)}): create them with `{fix}`"
        )


# -- shared with `smartcity nats` ----------------------------------------------------------------


def ensured_table(ensured: EnsuredStreams) -> Table:
    """What ``ensure`` did to each stream, its subjects and its main limits."""
    table = Table()
    for column in ("stream", "done", "subjects", "storage", "replicas", "max age"):
        table.add_column(column)
    for column in ("max bytes", "max msgs", "max msg size"):
        table.add_column(column, justify="right")
    styles = {"created": "green", "updated": "yellow", "unchanged": "dim"}
    for name, info in ensured.items():
        outcome = str(ensured.outcomes.get(name, "unchanged"))
        limits = limits_of(info.config)
        table.add_row(
            name,
            f"[{styles.get(outcome, 'default')}]{outcome}[/]",
            escape(", ".join(info.config.subjects or ())),
            str(limits["storage"]),
            str(limits["replicas"]),
            _age(limits["max_age_seconds"]),
            _bytes(limits["max_bytes"]),
            _count(limits["max_msgs"]),
            _bytes(limits["max_msg_size"]),
        )
    return table


def ensured_summary(ensured: EnsuredStreams) -> str:
    """One line: which streams were created, updated or left as they were."""
    by_outcome: dict[str, list[str]] = {}
    for name in ensured:
        by_outcome.setdefault(str(ensured.outcomes.get(name, "unchanged")), []).append(name)
    return "; ".join(f"{outcome} {', '.join(names)}" for outcome, names in by_outcome.items())


# -- helpers -----------------------------------------------------------------------------------


def _settings(config: Path | None, nats: str | None) -> tuple[Settings, str]:
    try:
        settings = load_settings(config, nats={"url": nats} if nats else None)
    except ConfigError as exc:
        fail(exc, 2)
    if not settings.nats.url:
        fail(
            "no NATS server named: give --nats URL (e.g. nats://127.0.0.1:4222, which "
            "`smartcity nats` serves) or set nats.url (SMARTCITY_NATS__URL)",
            2,
        )
    # What the command did is its output; the log only says more when asked for DEBUG.
    level = "DEBUG" if settings.logging.level == "DEBUG" else "ERROR"
    setup_logging(LoggingSettings(level=level, format=settings.logging.format), service="streams")
    return settings, settings.nats.url


def _run(settings: Settings, url: str, work: Callable[[Bus], Awaitable[_T]]) -> tuple[_T, str]:
    """Connect, do ``work``, close; a failure is one line on stderr and exit code 1."""
    # A short command: a server that refuses the connection twice is an answer, not a reason
    # to keep retrying until the connect timeout (nats-py retries forever when this is 0).
    once = settings.nats.model_copy(update={"max_reconnect_attempts": 1})

    async def main() -> tuple[_T, str]:
        async with await Bus.connect(once, name="smartcity-streams", url=url) as bus:
            return await work(bus), server_of(bus)

    try:
        return asyncio.run(main())
    except BusError as exc:
        fail(exc)


def _streams_table(streams: list[StreamStatus]) -> Table:
    table = Table()
    table.add_column("stream")
    table.add_column("subjects")
    for column in ("messages", "bytes", "first", "last", "consumers"):
        table.add_column(column, justify="right")
    for stream in streams:
        subjects = escape(", ".join(stream.subjects))
        if not stream.exists:
            table.add_row(stream.name, subjects, "[red]missing[/red]", "", "", "", "")
            continue
        table.add_row(
            stream.name,
            subjects,
            f"{stream.messages:,}",
            _bytes(stream.bytes),
            _position(stream.first_sequence, stream.first_time),
            _position(stream.last_sequence, stream.last_time),
            str(len(stream.consumers)),
        )
    return table


def _consumers_table(streams: list[StreamStatus]) -> Table:
    table = Table(title="consumers")
    table.add_column("stream")
    table.add_column("consumer")
    for column in ("pending", "ack pending", "redelivered", "waiting", "last active"):
        table.add_column(column, justify="right")
    for stream in streams:
        for consumer in stream.consumers:
            table.add_row(
                stream.name,
                escape(consumer.name) + ("" if consumer.durable else " [dim](ephemeral)[/dim]"),
                f"{consumer.pending:,}",
                f"{consumer.ack_pending:,}",
                f"{consumer.redelivered:,}",
                str(consumer.waiting),
                _when(consumer.last_active),
            )
    if not table.rows:
        table.add_row("[dim]none[/dim]", "", "", "", "", "", "")
    return table


def _position(sequence: int, moment: datetime | None) -> str:
    return f"#{sequence:,} {_when(moment)}" if sequence else ""


def _when(moment: datetime | None) -> str:
    """Local time, as people on the machine read clocks."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def _age(seconds: float) -> str:
    if not seconds:
        return "unlimited"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def _count(value: Any) -> str:
    return "unlimited" if value is None or value < 0 else f"{value:,}"


def _bytes(value: Any) -> str:
    if value is None or value < 0:
        return "unlimited"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:g} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} TiB"
