"""Every input gets a verdict: arbitrary values in every field of every request, through
real gRPC and straight into the domain, are answered or refused with a clear reason, never
with an internal error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message_factory import GetMessageClass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from identity_support import (
    PASSWORD,
    add_staff,
    bearer,
    clock_now,
    identity_settings,
    opened,
    running_identity,
)

from smartcity.identity.v1 import identity_pb2
from smartcity.runtime.config import Settings
from smartcity.runtime.errors import DomainError
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.tokens import RoleBinding
from smartcity.services.identity.model import (
    AuditFilter,
    NewPrincipal,
    PrincipalFilter,
    PrincipalKind,
)
from smartcity.services.identity.service import IdentityService, local_operator

VERDICTS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
texts = st.text(max_size=80) | st.sampled_from(["", "*", "a" * 2000, "\x00", "operator:*"])
SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_STRING: texts,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_ENUM: st.integers(-5, 20),
}
SERVICE = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"]


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Arbitrary field values for a message type, as keyword arguments."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        nested = field.message_type
        if nested is not None and nested.GetOptions().map_entry:
            fields[field.name] = st.dictionaries(texts, texts, max_size=3)
            continue
        if nested is not None:
            if depth > 2:
                continue
            value: st.SearchStrategy[Any] = messages(nested, depth + 1).map(
                lambda kwargs, kind=nested: GetMessageClass(kind)(**kwargs)
            )
        else:
            value = SCALARS[field.type]
        fields[field.name] = st.lists(value, max_size=3) if field.is_repeated else value
    return st.fixed_dictionaries({}, optional=fields)


async def outcome(call: Any) -> tuple[grpc.StatusCode, str]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.fixture
def served(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    return Settings(
        nats=nats_server.client_settings(),
        data_dir=tmp_path,
        identity=identity_settings(f"sqlite:///{tmp_path / 'identity.db'}"),
    )


@pytest.fixture
async def channel(served: Settings) -> AsyncIterator[tuple[grpc.aio.Channel, str]]:
    async with opened(served, clock_now()) as service:
        await add_staff(service, "ioc.admin", "identity_admin:*")
    async with (
        running_identity(served) as running,
        grpc.aio.insecure_channel(running.grpc_address) as connection,
    ):
        login = connection.unary_unary(
            f"/{SERVICE.full_name}/Login",
            request_serializer=identity_pb2.LoginRequest.SerializeToString,
            response_deserializer=identity_pb2.LoginResponse.FromString,
        )
        answer = await login(identity_pb2.LoginRequest(username="ioc.admin", password=PASSWORD))
        yield connection, answer.tokens.access_token


@pytest.mark.parametrize("method", sorted(SERVICE.methods_by_name))
@FUZZ
@given(data=st.data(), as_admin=st.booleans())
async def test_every_rpc_gives_every_request_a_verdict(
    channel: tuple[grpc.aio.Channel, str], method: str, data: st.DataObject, as_admin: bool
) -> None:
    connection, admin = channel
    descriptor = SERVICE.methods_by_name[method]
    request_class = GetMessageClass(descriptor.input_type)
    call = connection.unary_unary(
        f"/{SERVICE.full_name}/{method}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=GetMessageClass(descriptor.output_type).FromString,
    )
    request = request_class(**data.draw(messages(descriptor.input_type)))
    code, details = await outcome(call(request, metadata=bearer(admin) if as_admin else None))
    assert code in VERDICTS, (code, details)
    assert code == grpc.StatusCode.OK or details.strip(), "a refusal says why"


@FUZZ
@given(value=texts, which=st.integers(0, 20))
async def test_every_domain_call_gives_arbitrary_strings_a_verdict(
    identity: IdentityService, value: str, which: int
) -> None:
    admin = a = local_operator()
    known = await identity.store.principal_by_username("operator.a")
    staff_id = known[0].id if known else await add_staff(identity, "operator.a")
    citizen, device = PrincipalKind.CITIZEN, PrincipalKind.DEVICE
    calls = [
        lambda s: identity.logins.login(s, s, s, s),
        lambda s: identity.logins.login("operator.a", s, s, s),
        lambda s: identity.logins.verify_totp(s, s, s),
        lambda s: identity.sessions.refresh(s),
        lambda s: identity.sessions.logout(s),
        lambda s: identity.sessions.introspect(s),
        lambda s: identity.sessions.revoke_token(s, s, admin),
        lambda s: identity.create_principal(NewPrincipal(citizen, s, s, s, s), s, s, None),
        lambda s: identity.create_principal(NewPrincipal(device, s, labels={s: s}), "", s, admin),
        lambda s: identity.get_principal(s, admin),
        lambda s: identity.update_principal(staff_id, {"display_name": s, "labels": {s: s}}, admin),
        lambda s: identity.update_principal(s, {"email": s}, admin),
        lambda s: identity.set_state(s, False, s, admin),
        lambda s: identity.set_password(staff_id, s, s, admin, s),
        lambda s: identity.change_role(staff_id, RoleBinding(s, s), True, admin),
        lambda s: identity.list_principals(PrincipalFilter(role=s, field=s), 9, s, a),
        lambda s: identity.list_principals(PrincipalFilter(name_prefix=s), 9, s, a),
        lambda s: identity.list_principals(PrincipalFilter(), 10, s, admin),
        lambda s: identity.audit(AuditFilter(principal_id=s), 10, s, admin),
        lambda s: identity.issue_service_token(s, 60, [s], admin),
        lambda s: identity.confirm_totp(staff_id, s, admin),
    ]  # fmt: skip

    reason = None
    try:
        await calls[which](value)
    except DomainError as refused:
        reason = refused.message
    assert reason is None or reason.strip()
