"""``smartcity fields``: what the installed field plugins declare, for people and scripts.

It loads the plugins exactly as every service does (same entry points, same settings, same
checks), so a plugin that this command refuses is one that would stop the platform, and the
message printed here is the one the services would log.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.fields import (
    TRACE_LOGGER,
    Aggregation,
    Field,
    FieldHost,
    FieldHostError,
    Kpi,
    Metric,
    load_fields,
)
from smartcity.runtime.config import ConfigError, load_settings

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]
TraceOption = Annotated[
    bool,
    typer.Option(
        "--trace-hooks",
        help="Log every plugin hook call to stderr (also SMARTCITY_PLUGINS__TRACE_HOOKS=true).",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML configuration file (default: $SMARTCITY_CONFIG); plugins.enabled and "
        "plugins.disabled select the fields.",
        dir_okay=False,
    ),
]


def fields_command(
    json_output: JsonOption = False,
    trace: TraceOption = False,
    config: ConfigOption = None,
) -> None:
    """List the smart fields the installed plugins provide, grouped by pillar."""
    with _loaded(config, trace) as host:
        if json_output:
            typer.echo(json.dumps([_summary(item) for item in host], indent=2, ensure_ascii=False))
            return
        Console().print(_fields_table(host))


def field_show_command(
    field_id: Annotated[str, typer.Argument(help="Field id, as listed by 'smartcity fields'.")],
    json_output: JsonOption = False,
    trace: TraceOption = False,
    config: ConfigOption = None,
) -> None:
    """Show one field's metric catalogue (units, valid ranges) and KPIs."""
    with _loaded(config, trace) as host:
        if field_id not in host:
            known = ", ".join(item.id for item in host) or "none"
            _fail(f"no field {field_id!r} is loaded (loaded: {known})")
        item = host[field_id]
        if json_output:
            typer.echo(json.dumps(item.as_dict(), indent=2, ensure_ascii=False))
            return
        console = Console()
        console.print(
            f"[bold]{escape(item.info.title)}[/bold] ({item.id}, pillar {item.pillar}) "
            f"from {escape(_plugin_label(item))}",
            highlight=False,
        )
        console.print(item.info.description, markup=False, highlight=False)
        console.print(_metrics_table(item))
        console.print(_kpis_table(item))
        extras = {
            "alert rules": len(item.alert_rules),
            "record types": len(item.record_types),
            "device profiles": len(item.device_profiles),
        }
        console.print(", ".join(f"{count} {what}" for what, count in extras.items()))


fields_app = typer.Typer(
    name="fields",
    help="The smart fields provided by the installed plugins.",
    invoke_without_command=True,
    no_args_is_help=False,
)
"""A ready ``fields`` group: ``smartcity fields`` lists, ``smartcity fields show ID`` shows."""


@fields_app.callback()
def _fields_group(
    ctx: typer.Context,
    json_output: JsonOption = False,
    trace: TraceOption = False,
    config: ConfigOption = None,
) -> None:
    """List the smart fields the installed plugins provide, grouped by pillar."""
    if ctx.invoked_subcommand is None:
        fields_command(json_output=json_output, trace=trace, config=config)


fields_app.command("show")(field_show_command)


@contextmanager
def _loaded(config: Path | None, trace: bool) -> Iterator[FieldHost]:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _fail(str(exc))
    with _trace_output(trace or settings.plugins.trace_hooks):
        try:
            host = load_fields(settings.plugins, trace=trace)
        except FieldHostError as exc:
            _fail(str(exc))
        try:
            yield host
        finally:
            host.close()


@contextmanager
def _trace_output(enabled: bool) -> Iterator[None]:
    """Send the hook trace to stderr for the length of the command, unless the process's
    logging is already configured to put it somewhere."""
    logger = logging.getLogger(TRACE_LOGGER)
    if not enabled or logger.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code=1)


def _plugin_label(item: Field) -> str:
    origin = item.origin
    if origin.distribution is None:
        return origin.target
    return f"{origin.distribution} {origin.version}"


def _summary(item: Field) -> dict[str, Any]:
    data = item.as_dict()
    return {
        "id": data["id"],
        "pillar": data["pillar"],
        "title": data["title"],
        "description": data["description"],
        "plugin": data["plugin"],
        "hooks": data["hooks"],
        "metric_count": len(item.metrics),
        "kpi_count": len(item.kpis),
        "metrics": data["metrics"],
        "kpis": data["kpis"],
    }


def _fields_table(host: FieldHost) -> Table:
    table = Table(title=f"{len(host)} smart fields", title_justify="left")
    table.add_column("Pillar", style="bold")
    table.add_column("Field", no_wrap=True)
    table.add_column("Title")
    table.add_column("Metrics", justify="right")
    table.add_column("KPIs", justify="right")
    table.add_column("Plugin")
    table.add_column("Hooks")
    for pillar, group in host.by_pillar().items():
        for index, item in enumerate(group):
            table.add_row(
                str(pillar) if index == 0 else "",
                item.id,
                escape(item.info.title),
                str(len(item.metrics)),
                str(len(item.kpis)),
                escape(_plugin_label(item)),
                ", ".join(item.hooks),
            )
        table.add_section()
    return table


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _metric_note(metric: Metric) -> str:
    if not metric.states:
        return metric.description
    states = ", ".join(f"{value}={label}" for value, label in metric.states.items())
    return f"{metric.description} ({states})"


def _metrics_table(item: Field) -> Table:
    table = Table(title="Metrics", title_justify="left")
    for name, options in (
        ("Name", {"no_wrap": True}),
        ("Kind", {}),
        ("Unit", {"no_wrap": True}),
        ("Min", {"justify": "right"}),
        ("Max", {"justify": "right"}),
        ("Description", {}),
    ):
        table.add_column(name, **options)
    for metric in item.metrics.values():
        table.add_row(
            metric.name,
            str(metric.kind),
            escape(metric.unit),
            _bound(metric.minimum),
            _bound(metric.maximum),
            escape(_metric_note(metric)),
        )
    return table


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _computation(kpi: Kpi) -> str:
    if kpi.aggregation is Aggregation.RATIO:
        text = f"ratio({kpi.metric} / {kpi.denominator})"
    elif kpi.threshold is not None:
        text = f"{kpi.aggregation}({kpi.metric}, {kpi.threshold:g})"
    else:
        text = f"{kpi.aggregation}({kpi.metric})"
    if kpi.scale != 1:
        text += f" x {kpi.scale:g}"
    return f"{text} over {_duration(kpi.window_seconds)}"


def _kpis_table(item: Field) -> Table:
    table = Table(title="KPIs", title_justify="left")
    table.add_column("KPI", no_wrap=True)
    table.add_column("Title")
    table.add_column("Unit", no_wrap=True)
    table.add_column("Better")
    table.add_column("Target", justify="right")
    table.add_column("Computed as")
    table.add_column("Standard")
    for kpi in item.kpis:
        table.add_row(
            kpi.id,
            escape(kpi.title),
            escape(kpi.unit),
            str(kpi.direction),
            _bound(kpi.target),
            _computation(kpi),
            escape(kpi.standard),
        )
    return table
