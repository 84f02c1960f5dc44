"""``smartcity users``: principals and their roles, straight in the identity store.

``users`` works directly on the identity store named by the configuration (the same
``identity.store_url`` the service uses): it is how the first administrator is made, before
any token exists, and whoever can read the configuration and open the database administers
identity already. Changes are recorded as identity events; a running identity service
publishes them on the bus within a second (its outbox), so revocations made here reach every
service too.

This module holds the commands; how they open the store is :mod:`.users_store`.
``smartcity login``, which asks a running identity service for a token, is :mod:`.login`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from smartcity.cli.errors import fail
from smartcity.cli.login import read_password
from smartcity.cli.users_store import ConfigOption, StoreOption, find_principal, run_on_store

__all__ = ["users_app"]

users_app = typer.Typer(
    name="users",
    help="Principals and their roles, straight in the identity store (bootstrap, rescue).",
    no_args_is_help=True,
)

KINDS = ("citizen", "staff", "device", "service")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; kept in the audit.")]


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).astimezone().isoformat(timespec="seconds")


def _principal_json(principal: Any) -> dict[str, Any]:
    return {
        "id": principal.id,
        "kind": principal.kind.value,
        "username": principal.username,
        "display_name": principal.display_name,
        "email": principal.email,
        "personal_id": principal.personal_id,
        "assurance": principal.assurance.name,
        "roles": sorted(str(binding) for binding in principal.roles),
        "state": principal.state.value,
        "totp": principal.totp_enabled,
        "labels": dict(principal.labels),
    }


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name (device: <site>/<device>).")],
    kind: Annotated[str, typer.Option("--kind", "-k", help="citizen|staff|device|service")] = (
        "staff"
    ),
    display_name: Annotated[str, typer.Option("--name", help="Name shown to people.")] = "",
    email: Annotated[str, typer.Option("--email")] = "",
    personal_id: Annotated[str, typer.Option("--personal-id", help="A citizen's 12 digits.")] = "",
    role: Annotated[
        list[str] | None, typer.Option("--role", "-r", help="<role>:<field>, repeatable.")
    ] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Create a principal (the password from SMARTCITY_PASSWORD or a hidden prompt, for
    citizens and staff), with roles: `smartcity users add ioc.admin -r identity_admin:*`."""
    from smartcity.runtime.tokens import PrincipalKind, RoleBinding
    from smartcity.services.identity.model import NewPrincipal
    from smartcity.services.identity.service import local_operator

    if kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}", 2)
    try:
        bindings = [RoleBinding.parse(text) for text in role or []]
    except ValueError as exc:
        fail(exc, 2)
    principal_kind = PrincipalKind(kind)
    needs_password = principal_kind in (PrincipalKind.CITIZEN, PrincipalKind.STAFF)
    password = read_password("Password", confirm=True) if needs_password else ""
    new = NewPrincipal(principal_kind, username, display_name, email, personal_id)

    async def work(service: Any) -> Any:
        actor = local_operator()
        created = await service.create_principal(new, password, "", actor)
        for binding in bindings:
            created = await service.change_role(created.id, binding, True, actor)
        return created

    created = run_on_store(config, store, work)
    roles = ", ".join(sorted(str(binding) for binding in created.roles)) or "no roles"
    Console().print(f"created {created.kind.value} {created.username} ({created.id}): {roles}")


@users_app.command("list")
def list_users(
    kind: Annotated[str | None, typer.Option("--kind", "-k")] = None,
    role: Annotated[str | None, typer.Option("--role")] = None,
    field: Annotated[str | None, typer.Option("--field", "-f")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Name starts with.")] = None,
    include_disabled: Annotated[bool, typer.Option("--all", help="Disabled ones too.")] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """List principals, ordered by username."""
    from smartcity.runtime.tokens import PrincipalKind
    from smartcity.services.identity.model import PrincipalFilter
    from smartcity.services.identity.service import local_operator

    if kind is not None and kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}", 2)
    where = PrincipalFilter(
        kind=PrincipalKind(kind) if kind else None,
        role=role or "",
        field=field or "",
        name_prefix=prefix or "",
        include_disabled=include_disabled,
    )

    async def work(service: Any) -> list[Any]:
        found: list[Any] = []
        token = ""
        while True:
            page = await service.list_principals(where, 1000, token, local_operator())
            found += page.items
            token = page.next_page_token or ""
            if not token:
                return found

    principals = run_on_store(config, store, work)
    if json_output:
        typer.echo(json.dumps([_principal_json(item) for item in principals], indent=2))
        return
    table = Table("username", "kind", "name", "roles", "state", "totp", "id")
    for item in principals:
        table.add_row(
            item.username,
            item.kind.value,
            item.display_name,
            " ".join(sorted(str(binding) for binding in item.roles)),
            item.state.value,
            "yes" if item.totp_enabled else "",
            item.id,
        )
    Console().print(table)


@users_app.command("roles")
def roles(
    username: str,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Show the role bindings of a principal."""

    async def work(service: Any) -> Any:
        return await find_principal(service, username)

    principal = run_on_store(config, store, work)
    bindings = sorted(str(binding) for binding in principal.roles)
    typer.echo(json.dumps(bindings) if json_output else "\n".join(bindings) or "(no roles)")


def _change_role(
    username: str, binding: str, grant: bool, config: Path | None, store: str | None
) -> None:
    from smartcity.runtime.tokens import RoleBinding
    from smartcity.services.identity.service import local_operator

    try:
        parsed = RoleBinding.parse(binding)
    except ValueError as exc:
        fail(exc, 2)

    async def work(service: Any) -> Any:
        principal = await find_principal(service, username)
        return await service.change_role(principal.id, parsed, grant, local_operator())

    changed = run_on_store(config, store, work)
    held = ", ".join(sorted(str(item) for item in changed.roles)) or "no roles"
    Console().print(f"{changed.username}: {held}")


@users_app.command("grant")
def grant(
    username: str,
    binding: Annotated[str, typer.Argument(help="<role>:<field>, e.g. operator:electricity")],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Grant a role on a field (or '*')."""
    _change_role(username, binding, True, config, store)


@users_app.command("revoke")
def revoke(
    username: str,
    binding: Annotated[str, typer.Argument(help="<role>:<field>")],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Withdraw a role binding."""
    _change_role(username, binding, False, config, store)


def _set_state(
    username: str, enabled: bool, reason: str, config: Path | None, store: str | None
) -> None:
    from smartcity.services.identity.service import local_operator

    async def work(service: Any) -> Any:
        principal = await find_principal(service, username)
        return await service.set_state(principal.id, enabled, reason, local_operator())

    changed = run_on_store(config, store, work)
    Console().print(f"{changed.username} is {changed.state.value}")


@users_app.command("disable")
def disable(
    username: str, reason: ReasonOption = "", config: ConfigOption = None, store: StoreOption = None
) -> None:
    """Disable a principal: no more logins, and every token it holds is revoked."""
    _set_state(username, False, reason, config, store)


@users_app.command("enable")
def enable(
    username: str, reason: ReasonOption = "", config: ConfigOption = None, store: StoreOption = None
) -> None:
    """Enable a disabled principal again."""
    _set_state(username, True, reason, config, store)


@users_app.command("audit")
def audit(
    username: Annotated[
        str | None, typer.Option("--user", "-u", help="Only this principal.")
    ] = None,
    event_type: Annotated[
        list[str] | None, typer.Option("--type", help="login_failed, locked_out, … repeatable.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """The newest identity events: logins, failures, lockouts, role changes, revocations."""
    from smartcity.services.identity.model import AuditFilter, EventType
    from smartcity.services.identity.service import local_operator

    try:
        types = frozenset(EventType(name) for name in event_type or [])
    except ValueError:
        fail(f"--type must be among {', '.join(kind.value for kind in EventType)}", 2)

    async def work(service: Any) -> list[Any]:
        principal_id = (await find_principal(service, username)).id if username else ""
        where = AuditFilter(principal_id=principal_id, types=types)
        return (await service.audit(where, limit, "", local_operator())).items

    events = run_on_store(config, store, work)
    if json_output:
        rows = [
            {
                "time": _when(event.time),
                "type": event.type.value,
                "principal": event.principal_id,
                "actor": event.actor_id,
                "role": str(event.role) if event.role else "",
                "token_id": event.token_id,
                "reason": event.reason,
                "source": event.source,
            }
            for event in events
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("time", "event", "principal", "actor", "detail", "source")
    for event in events:
        detail = " ".join(
            part for part in (str(event.role or ""), event.token_id, event.reason) if part
        )
        table.add_row(
            _when(event.time),
            event.type.value,
            event.principal_name or event.principal_id,
            event.actor_id,
            detail,
            event.source,
        )
    Console().print(table)
