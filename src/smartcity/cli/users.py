"""``smartcity users``, ``smartcity login`` and ``smartcity serve identity``.

``users`` works directly on the identity store named by the configuration (the same
``identity.store_url`` the service uses): it is how the first administrator is made, before
any token exists, and whoever can read the configuration and open the database administers
identity already. Changes are recorded as identity events; a running identity service
publishes them on the bus within a second (its outbox), so revocations made here reach every
service too.

``login`` talks to a running identity service over gRPC and prints the access token, for
scripts: ``export SMARTCITY_TOKEN=$(smartcity login ioc.admin)``. The password comes from
``SMARTCITY_PASSWORD`` or a hidden prompt, never from the command line.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from smartcity.cli.errors import fail

__all__ = ["login_command", "users_app"]

users_app = typer.Typer(
    name="users",
    help="Principals and their roles, straight in the identity store (bootstrap, rescue).",
    no_args_is_help=True,
)

PASSWORD_ENV = "SMARTCITY_PASSWORD"
TARGET_ENV = "SMARTCITY_IDENTITY_TARGET"
KINDS = ("citizen", "staff", "device", "service")

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", dir_okay=False, help="YAML configuration.")
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="sqlite:///path.db or postgresql://… (identity.store_url)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why; kept in the audit.")]


def _settings(config: Path | None, store: str | None) -> Any:
    from smartcity.runtime.config import ConfigError, load_settings

    try:
        return load_settings(config, identity={"store_url": store} if store else None)
    except ConfigError as exc:
        fail(exc, 2)


def _run(config: Path | None, store: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """``work(service)`` on the configured identity store, with errors as one line."""
    from smartcity.runtime.errors import DomainError, InvalidArgument
    from smartcity.runtime.storage import StoreError
    from smartcity.services.identity.app import open_identity

    settings = _settings(config, store)

    async def run() -> T:
        async with open_identity(settings) as service:
            return await work(service)

    try:
        return asyncio.run(run())
    except InvalidArgument as exc:
        fail(exc.message, 2)
    except DomainError as exc:
        fail(exc.message)
    except StoreError as exc:
        fail(exc)


async def _find(service: Any, username: str) -> Any:
    from smartcity.runtime.errors import NotFound

    found = await service.store.principal_by_username(username)
    if found is None:
        raise NotFound(f"no principal named {username!r}")
    return found[0]


def _password(prompt: str, *, confirm: bool) -> str:
    given = os.environ.get(PASSWORD_ENV)
    if given is not None:
        return given
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


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
    password = _password("Password", confirm=True) if needs_password else ""
    new = NewPrincipal(principal_kind, username, display_name, email, personal_id)

    async def work(service: Any) -> Any:
        actor = local_operator()
        created = await service.create_principal(new, password, "", actor)
        for binding in bindings:
            created = await service.change_role(created.id, binding, True, actor)
        return created

    created = _run(config, store, work)
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

    principals = _run(config, store, work)
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
        return await _find(service, username)

    principal = _run(config, store, work)
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
        principal = await _find(service, username)
        return await service.change_role(principal.id, parsed, grant, local_operator())

    changed = _run(config, store, work)
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
        principal = await _find(service, username)
        return await service.set_state(principal.id, enabled, reason, local_operator())

    changed = _run(config, store, work)
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
        principal_id = (await _find(service, username)).id if username else ""
        where = AuditFilter(principal_id=principal_id, types=types)
        return (await service.audit(where, limit, "", local_operator())).items

    events = _run(config, store, work)
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


def login_command(
    username: str,
    target: Annotated[
        str,
        typer.Option("--target", "-t", envvar=TARGET_ENV, help="Identity service host:port."),
    ] = "127.0.0.1:50053",
    totp: Annotated[str | None, typer.Option("--totp", help="The current TOTP code.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Log in to a running identity service and print the access token (for scripts:
    `export SMARTCITY_TOKEN=$(smartcity login ioc.admin)`). The password comes from
    SMARTCITY_PASSWORD or a hidden prompt; a TOTP code is asked for when needed."""
    import grpc
    import grpc.aio

    from smartcity.identity.v1 import identity_pb2, identity_pb2_grpc
    from smartcity.runtime.grpc_client import channel

    password = _password("Password", confirm=False)

    async def run() -> Any:
        async with channel(target) as connection:
            stub = identity_pb2_grpc.IdentityServiceStub(connection)
            answer = await stub.Login(
                identity_pb2.LoginRequest(
                    username=username, password=password, totp_code=totp or ""
                )
            )
            if answer.WhichOneof("result") == "tokens":
                return answer.tokens
            code = totp or typer.prompt("TOTP code")
            verified = await stub.VerifyTotp(
                identity_pb2.VerifyTotpRequest(
                    challenge_id=answer.totp_challenge.challenge_id, totp_code=code
                )
            )
            return verified.tokens

    try:
        tokens = asyncio.run(run())
    except grpc.aio.AioRpcError as error:
        code = 2 if error.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
        fail(f"{error.code().name.lower()}: {error.details()}", code)
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "access_token": tokens.access_token,
                    "refresh_token": tokens.refresh_token,
                    "expires": tokens.access_token_expire_time.ToJsonString(),
                    "principal": tokens.principal.id,
                }
            )
        )
        return
    typer.echo(tokens.access_token)
