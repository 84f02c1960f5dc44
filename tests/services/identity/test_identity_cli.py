"""``smartcity users`` on a real store, and ``smartcity login`` against a running identity
service: the first administrator made without any token, roles and states changed from the
command line, and a disable made there reaching the running service through its outbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import grpc.aio
import pytest
from identity_support import FAST_ARGON2, PASSWORD, bearer, identity_settings, running_identity
from support import eventually
from typer.testing import CliRunner

from smartcity.cli.main import app
from smartcity.identity.v1 import identity_pb2, identity_pb2_grpc
from smartcity.runtime.config import Settings
from smartcity.runtime.nats_server import EmbeddedNats


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = {
        "SMARTCITY_DATA_DIR": str(tmp_path),
        "SMARTCITY_IDENTITY__STORE_URL": f"sqlite:///{tmp_path / 'identity.db'}",
        "SMARTCITY_PASSWORD": PASSWORD,
    }
    values.update({f"SMARTCITY_IDENTITY__{key.upper()}": str(v) for key, v in FAST_ARGON2.items()})
    return values


def run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def test_users_bootstrap_roles_states_and_audit(env: dict[str, str]) -> None:
    assert "created staff ioc.admin" in run(
        env, "users", "add", "ioc.admin", "-r", "identity_admin:*"
    )
    run(env, "users", "add", "operator.a", "--name", "Operator A", "-r", "viewer:traffic")
    run(env, "users", "grant", "operator.a", "operator:electricity")
    assert json.loads(run(env, "users", "roles", "operator.a", "--json")) == [
        "operator:electricity",
        "viewer:traffic",
    ]
    run(env, "users", "revoke", "operator.a", "viewer:traffic")
    assert "does not hold" in run(env, "users", "revoke", "operator.a", "viewer:traffic", code=1)
    assert "unknown role" in run(env, "users", "grant", "operator.a", "boss:*", code=2)
    assert "is disabled" in run(env, "users", "disable", "operator.a", "--reason", "left")
    listed = json.loads(run(env, "users", "list", "--json"))
    assert [item["username"] for item in listed] == ["ioc.admin"]
    listed = json.loads(run(env, "users", "list", "--all", "--json"))
    assert {item["username"]: item["state"] for item in listed} == {
        "ioc.admin": "active",
        "operator.a": "disabled",
    }
    run(env, "users", "enable", "operator.a")
    events = json.loads(run(env, "users", "audit", "--user", "operator.a", "--json"))
    assert [event["type"] for event in events] == [
        "principal_enabled",
        "token_revoked",
        "principal_disabled",
        "role_revoked",
        "role_assigned",
        "role_assigned",
        "principal_created",
    ]
    weak = dict(env, SMARTCITY_PASSWORD="password1")
    assert "most common" in run(weak, "users", "add", "weak.one", code=2)
    assert "no principal named" in run(env, "users", "disable", "nobody", code=1)


async def test_login_prints_a_token_and_a_disable_from_the_cli_reaches_the_service(
    env: dict[str, str], nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    await asyncio.to_thread(run, env, "users", "add", "ioc.admin", "-r", "identity_admin:*")
    settings = Settings(
        nats=nats_server.client_settings(),
        data_dir=tmp_path,
        identity=identity_settings(env["SMARTCITY_IDENTITY__STORE_URL"]),
    )
    async with running_identity(settings) as running:
        target = running.grpc_address
        token = (await asyncio.to_thread(run, env, "login", "ioc.admin", "-t", target)).strip()
        wrong = dict(env, SMARTCITY_PASSWORD="not the password at all")
        refused = await asyncio.to_thread(run, wrong, "login", "ioc.admin", "-t", target, code=1)
        assert "invalid credentials" in refused

        async with grpc.aio.insecure_channel(target) as connection:
            stub = identity_pb2_grpc.IdentityServiceStub(connection)
            listed = await stub.ListPrincipals(
                identity_pb2.ListPrincipalsRequest(), metadata=bearer(token)
            )
            assert [item.username for item in listed.principals] == ["ioc.admin"]
            await asyncio.to_thread(run, env, "users", "disable", "ioc.admin")

            async def refused_now() -> bool:
                try:
                    await stub.ListPrincipals(
                        identity_pb2.ListPrincipalsRequest(), metadata=bearer(token)
                    )
                except grpc.aio.AioRpcError as error:
                    return error.code() == grpc.StatusCode.UNAUTHENTICATED
                return False

            await eventually(refused_now, within=5, what="the token refused after the disable")
