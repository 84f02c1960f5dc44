"""The device profiles of ``smartcity agent``: the ones given, and the ones plugins bring.

:func:`load_profiles` reads the files given with ``--profile`` and checks them against the
installed fields, all problems reported together; ``agent templates`` lists the ready
profiles the field plugins bring and ``agent template`` fills one in for a deployment.
The options every agent command shares are here too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from smartcity.cli.errors import fail

__all__ = ["ConfigOption", "ProfileOption", "agent_template", "agent_templates", "load_profiles"]

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


def load_profiles(paths: list[Path]) -> list:
    """The profiles in ``paths``, checked against the installed fields; the problems of every
    file are reported together (exit 2)."""
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
