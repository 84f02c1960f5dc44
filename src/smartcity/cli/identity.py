"""``smartcity identity``: the platform's identities as other systems see them.

``identity nats-config`` writes the NATS authorization of the platform (one user per
service, per edge agent and an admin, each with least-privilege permissions) and one
credentials file per user, for ``smartcity nats --auth DIR`` or an external nats-server.
The work is done by :mod:`smartcity.runtime.nats_auth`; this module reads the device
profiles and presents the result.

Agents come from a folder of device profiles: each sub-folder is one agent named after the
folder, serving the devices of the profiles in it; a profile directly in the folder belongs
to the agent named after its site (one agent per station, the usual deployment).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.cli.errors import fail
from smartcity.runtime.config import ConfigError, load_settings
from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.nats_auth.plan import (
    ADMIN_USER,
    DEFAULT_DURABLES,
    SERVICES,
    AgentPlan,
    DeviceRef,
    Principal,
    platform_principals,
)
from smartcity.runtime.nats_auth.render import (
    AUTHORIZATION_FILE,
    DEFAULT_BCRYPT_ROUNDS,
    WrittenAuthorization,
    write_authorization,
)

identity_app = typer.Typer(
    name="identity",
    help="The platform's identities outside its own services (NATS users and permissions).",
    no_args_is_help=True,
)

_PROFILE_SUFFIXES = (".yaml", ".yml")


def agents_from_profiles(folder: Path) -> list[AgentPlan]:
    """The agents of a folder of device profiles (see the module documentation).

    Raises :class:`InvalidArgument` listing every profile that cannot be loaded.
    """
    from smartcity.agents.profile import ProfileError, load_profile
    from smartcity.fields import FieldHostError, load_fields

    if not folder.is_dir():
        raise InvalidArgument(f"{folder}: not a folder of device profiles")
    try:
        known = [field.id for field in load_fields()]
    except FieldHostError as exc:
        raise InvalidArgument(str(exc)) from None
    devices: dict[str, set[DeviceRef]] = defaultdict(set)
    problems: list[str] = []
    for path in sorted(folder.rglob("*")):
        if path.suffix not in _PROFILE_SUFFIXES or not path.is_file():
            continue
        relative = path.relative_to(folder)
        if len(relative.parts) > 2:
            continue  # deeper files are an agent's own (certificates, notes)
        try:
            profile = load_profile(path, known_fields=known)
        except ProfileError as exc:
            problems.append(str(exc))
            continue
        agent = relative.parts[0] if len(relative.parts) == 2 else profile.site
        devices[agent].add(DeviceRef(profile.field, profile.site, profile.device))
    if problems:
        raise InvalidArgument("\n".join(problems))
    if not devices:
        raise InvalidArgument(f"{folder}: no device profiles (*.yaml) found")
    return [AgentPlan(agent, tuple(sorted(refs))) for agent, refs in sorted(devices.items())]


def _services(text: str | None) -> list[str]:
    if text is None:
        return list(SERVICES)
    return [name.strip() for name in text.split(",") if name.strip()]


@identity_app.command("nats-config")
def nats_config_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            file_okay=False,
            help="Folder for authorization.conf and credentials/<user>.yaml.",
        ),
    ],
    profiles: Annotated[
        Path | None,
        typer.Option(
            "--profiles",
            file_okay=False,
            help="Folder of device profiles: DIR/<agent-id>/*.yaml, or DIR/*.yaml for one agent "
            "per site (default: no agents).",
        ),
    ] = None,
    services: Annotated[
        str | None,
        typer.Option(help=f"Comma-separated services to include (default: {','.join(SERVICES)})."),
    ] = None,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate", help="New passwords for every user (default: keep the existing ones)."
        ),
    ] = False,
    agent_workers: Annotated[
        int,
        typer.Option(
            "--agent-workers",
            min=1,
            max=64,
            help="The agents run with `smartcity agent --workers N`: let each worker publish "
            "its heartbeats under its own id.",
        ),
    ] = 1,
    rounds: Annotated[
        int,
        typer.Option("--bcrypt-rounds", min=4, max=16, help="bcrypt cost of the stored hashes."),
    ] = DEFAULT_BCRYPT_ROUNDS,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            dir_okay=False,
            help="YAML configuration (default: $SMARTCITY_CONFIG): monitoring.ingest.durable.",
        ),
    ] = None,
) -> None:
    """Write the platform's NATS authorization and each user's credentials file.

    Agents publish only their own devices' telemetry, heartbeats and audit records and read
    only their devices' commands; each service publishes only its own subjects; the admin
    user provisions streams. The server keeps only bcrypt hashes.
    """
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(exc, 2)
    durables = {**DEFAULT_DURABLES, "monitoring": settings.monitoring.ingest.durable}
    try:
        agents = agents_from_profiles(profiles) if profiles is not None else []
        agents = [replace(agent, workers=agent_workers) for agent in agents]
        principals = platform_principals(agents, services=_services(services), durables=durables)
    except InvalidArgument as exc:
        fail(exc, 2)
    try:
        written = write_authorization(out, principals, rotate=rotate, rounds=rounds)
    except OSError as exc:
        fail(f"cannot write the NATS authorization into {out}: {exc}")
    _report(Console(soft_wrap=True), out, principals, written)


def _report(
    out: Console, folder: Path, principals: list[Principal], written: WrittenAuthorization
) -> None:
    out.print(
        f"[green]Wrote the NATS authorization of {len(principals)} users[/green] to "
        f"{escape(str(folder))}",
        highlight=False,
    )
    table = Table("user", "kind", "credentials file (mode 0600)", "password", box=None)
    for principal in principals:
        path = written.credentials[principal.user]
        state = "new" if principal.user in written.created else "kept"
        table.add_row(principal.user, principal.kind.value, escape(str(path)), state)
    out.print(table)
    conf = written.authorization
    example = next((p for p in principals if p.kind.value == "agent"), principals[-1])
    out.print("\nUse it:", highlight=False)
    out.print(f"  embedded server   smartcity nats --auth {escape(str(folder))}", highlight=False)
    out.print(
        f"  external server   copy {escape(str(conf))} beside nats-server.conf and add the "
        f'line  include "{AUTHORIZATION_FILE}"  then reload it (nats-server --signal reload)',
        highlight=False,
    )
    out.print(
        "  each process      SMARTCITY_NATS__CREDENTIALS_FILE=<its credentials file>, e.g. "
        f"{example.user}: SMARTCITY_NATS__CREDENTIALS_FILE="
        f"{escape(str(written.credentials[example.user]))}",
        highlight=False,
    )
    out.print(
        f"  streams           smartcity streams ensure as {ADMIN_USER}: "
        f"SMARTCITY_NATS__CREDENTIALS_FILE={escape(str(written.credentials[ADMIN_USER]))}",
        highlight=False,
    )
    out.print(
        "  agents            agent <id> runs with SMARTCITY_AGENT__ID=<id> and the "
        "credentials file of user agent-<id>",
        highlight=False,
    )
