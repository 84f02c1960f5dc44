"""Who may call what, for every RPC of every service in ``smartcity.services``, generated
from the permissions the servicers declare: a servicer with an RPC that declares none fails
here, and every declaration is checked against what a real gRPC server does for a set of
callers (anonymous, a citizen, viewers, operators, engineers, officers, admins, devices and
services)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import message_factory
from token_support import Signer

import smartcity.services
from smartcity.runtime.auth import AuthInterceptor, permission_table
from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.errors import PermissionDenied, Unauthenticated
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.grpc_server import GrpcServer
from smartcity.runtime.tokens import TokenVerifier
from smartcity.runtime.trust import LocalAuthenticator

Registration = tuple[Callable[..., Any], Any]


def _servicer_classes() -> Iterator[tuple[str, type, Callable[..., Any]]]:
    """(service package, servicer class, generated add function) for every servicer that
    subclasses a generated base in a service's ``server`` module."""
    for module_info in pkgutil.iter_modules(smartcity.services.__path__):
        try:
            module = importlib.import_module(f"smartcity.services.{module_info.name}.server")
        except ModuleNotFoundError:
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for base in cls.__mro__[1:]:
                if base.__module__.endswith("_pb2_grpc") and base.__name__.endswith("Servicer"):
                    generated = importlib.import_module(base.__module__)
                    add = getattr(generated, f"add_{base.__name__}_to_server")
                    yield module_info.name, cls, add
                    break


SERVICERS = sorted(_servicer_classes(), key=lambda item: item[0])


def _registrations() -> list[Registration]:
    # The servicers are never constructed: a call that the interceptor lets through fails
    # inside the servicer (no service behind it), which tells "allowed" from "refused".
    return [(add, object.__new__(cls)) for _, cls, add in SERVICERS]


def test_every_service_has_a_servicer_here() -> None:
    assert {name for name, _, _ in SERVICERS} >= {"monitoring"}


@pytest.mark.parametrize(("name", "cls", "add"), SERVICERS, ids=[s[0] for s in SERVICERS])
def test_every_rpc_declares_its_permission(name: str, cls: type, add: Callable[..., Any]) -> None:
    table = permission_table([(add, object.__new__(cls))])
    assert table, f"{name} declares no RPC"


def personas(signer: Signer) -> dict[str, str | None]:
    now = int(time.time())
    strong = {"amr": ["pwd", "otp"], "auth_time": now - 5, "acr": "vneid:2"}
    return {
        "anonymous": None,
        "citizen": signer.sign(sub="citizen-1", kind="citizen", roles=[], **strong),
        "viewer:water_supply": signer.sign(roles=["viewer:water_supply"], amr=["pwd"], acr=None),
        "operator:electricity": signer.sign(roles=["operator:electricity"], **strong),
        "engineer:*": signer.sign(roles=["engineer:*"], **strong),
        "records_officer:health": signer.sign(roles=["records_officer:health"], **strong),
        "identity_admin:*": signer.sign(roles=["identity_admin:*"], **strong),
        "device": signer.sign(sub="hk/bay-1", kind="device", roles=[], amr=["svc"], acr=None),
        "service": signer.sign(sub="alerts", kind="service", roles=["viewer:*"], amr=["svc"]),
    }


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture
async def server(signer: Signer) -> AsyncIterator[GrpcServer]:
    registrations = _registrations()
    verifier = TokenVerifier(signer.key_set())
    async with GrpcServer(
        GrpcSettings(port=0),
        registrations,
        service_names=[add.__module__ for _, _, add in SERVICERS],
        auth=AuthInterceptor.for_servicers(registrations, LocalAuthenticator(verifier)),
    ) as started:
        yield started


def _request_class(path: str) -> tuple[type, bool]:
    """The request message class of a method path, and whether the server streams."""
    service_name, method_name = path.lstrip("/").split("/")
    for _, _, add in SERVICERS:
        generated = importlib.import_module(add.__module__.removesuffix("_grpc"))
        for service in generated.DESCRIPTOR.services_by_name.values():
            if service.full_name == service_name:
                method = service.methods_by_name[method_name]
                request = message_factory.GetMessageClass(method.input_type)
                return request, method.server_streaming
    raise AssertionError(f"no servicer implements {path}")


async def test_the_permission_matrix_holds_on_a_real_server(
    server: GrpcServer, signer: Signer
) -> None:
    table = permission_table(_registrations())
    verifier = TokenVerifier(signer.key_set())
    matrix: list[str] = []
    async with channel(server.address) as connection:
        for path, declared in sorted(table.items()):
            request_class, streaming = _request_class(path)
            request = request_class()
            row = []
            for persona, token in personas(signer).items():
                claims = None if token is None else verifier.verify(token)
                try:
                    declared.check(claims, request)
                    expected: str | None = None
                except (Unauthenticated, PermissionDenied) as refusal:
                    expected = refusal.message
                metadata = () if token is None else (("authorization", f"Bearer {token}"),)
                code, details = await _call(connection, path, request, streaming, metadata)
                if expected is None:
                    assert code != grpc.StatusCode.UNAUTHENTICATED, (path, persona, details)
                    row.append("yes")
                else:
                    assert code in (
                        grpc.StatusCode.UNAUTHENTICATED,
                        grpc.StatusCode.PERMISSION_DENIED,
                    ), (path, persona, code)
                    assert details == expected, (path, persona)
                    row.append("no")
            matrix.append(f"{path}: {declared.describe()}: {' '.join(row)}")
    assert len(matrix) == len(table)


async def _call(
    connection: grpc.aio.Channel,
    path: str,
    request: Any,
    streaming: bool,
    metadata: tuple[tuple[str, str], ...],
) -> tuple[grpc.StatusCode, str]:
    serialize = type(request).SerializeToString
    try:
        if streaming:
            stream = connection.unary_stream(path, request_serializer=serialize)(
                request, metadata=metadata, timeout=10
            )
            async for _ in stream:
                break
            stream.cancel()
        else:
            await connection.unary_unary(path, request_serializer=serialize)(
                request, metadata=metadata, timeout=10
            )
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""
