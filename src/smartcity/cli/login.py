"""``smartcity login``: log in to a running identity service and print the access token.

For scripts: ``export SMARTCITY_TOKEN=$(smartcity login ioc.admin)``. Unlike ``smartcity
users`` it talks to the service over gRPC, as any client does. The password comes from
``SMARTCITY_PASSWORD`` or a hidden prompt, never from the command line
(:func:`read_password`, which ``users add`` uses too).
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from smartcity.cli.errors import run_rpc

__all__ = ["PASSWORD_ENV", "TARGET_ENV", "login_command", "read_password"]

PASSWORD_ENV = "SMARTCITY_PASSWORD"
TARGET_ENV = "SMARTCITY_IDENTITY_TARGET"


def read_password(prompt: str, *, confirm: bool) -> str:
    given = os.environ.get(PASSWORD_ENV)
    if given is not None:
        return given
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def login_command(
    username: str,
    target: Annotated[
        str,
        typer.Option("--target", "-t", envvar=TARGET_ENV, help="Identity service host:port."),
    ] = "127.0.0.1:50053",
    totp: Annotated[str | None, typer.Option("--totp", help="The current TOTP code.")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts instead.")
    ] = False,
) -> None:
    """Log in to a running identity service and print the access token (for scripts:
    `export SMARTCITY_TOKEN=$(smartcity login ioc.admin)`). The password comes from
    SMARTCITY_PASSWORD or a hidden prompt; a TOTP code is asked for when needed."""
    from smartcity.identity.v1 import identity_pb2, identity_pb2_grpc
    from smartcity.runtime.grpc_client import channel

    password = read_password("Password", confirm=False)

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

    tokens = run_rpc("identity", target, run)
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
