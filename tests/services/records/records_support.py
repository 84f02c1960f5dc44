"""What the records tests share: tokens for every kind of caller, sample documents of the
city's record types, a settable clock, and a records API on a real gRPC server over a real
store."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_status import rpc_status
from token_support import ISSUER, Signer

from smartcity.fields import load_fields
from smartcity.records.v1 import records_pb2_grpc
from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.grpc_server import GrpcServer
from smartcity.runtime.tokens import TokenVerifier
from smartcity.services.records.model import DAY, MICROS
from smartcity.services.records.schemas import TypeRegistry
from smartcity.services.records.server import build_server
from smartcity.services.records.service import RecordsService
from smartcity.services.records.store import RecordStore, open_store

T0 = 1_795_305_600 * MICROS
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def backend_url(request: pytest.FixtureRequest, folder: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{folder / 'records.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@cache
def city_types() -> TypeRegistry:
    return TypeRegistry.from_fields(load_fields())


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, micros: int) -> None:
        self.now += micros


class Tokens:
    """Identity's signing key, and tokens of the callers the tests need."""

    def __init__(self) -> None:
        self.signer = Signer(kid="records-test")

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(self.signer.key_set(), issuer=ISSUER)

    def token(
        self,
        sub: str,
        *,
        kind: str = "staff",
        roles: list[str] | None = None,
        level: int = 2,
        strong: bool = True,
    ) -> str:
        now = int(time.time())
        return self.signer.sign(
            sub=sub,
            kind=kind,
            roles=roles or [],
            acr=f"vneid:{level}",
            amr=["pwd", "otp"] if strong else ["pwd"],
            auth_time=now - 5,
            iat=now - 5,
            exp=now + 600,
        )

    def citizen(self, sub: str, *, level: int = 2, strong: bool = True) -> str:
        return self.token(sub, kind="citizen", level=level, strong=strong)

    def officer(self, *fields: str, sub: str = "officer-1", strong: bool = True) -> str:
        return self.token(sub, roles=[f"records_officer:{f}" for f in fields], strong=strong)

    def viewer(self, *fields: str, sub: str = "viewer-1") -> str:
        return self.token(sub, roles=[f"viewer:{f}" for f in fields])


def ticket(citizen: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "citizen_id": citizen,
        "channel": "portal",
        "category": "environment",
        "title": "Rubbish left on Bach Dang street",
        "description": "Bags of rubbish next to the river walk since Monday",
        "district": "hai_chau",
        "status": "new",
    }
    data.update(changes)
    return data


def health(citizen: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "citizen_id": citizen,
        "patient": {"full_name": "Nguyen Van An", "birth_date": "1984-03-12", "sex": "male"},
        "blood_type": "O+",
        "allergies": ["penicillin"],
        "facility_id": "hospital-c",
    }
    data.update(changes)
    return data


def facility(name: str = "Bun cha ca Ba Lu", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "address": "319 Hung Vuong, Hai Chau",
        "district": "hai_chau",
        "kind": "restaurant",
        "certificate": {
            "number": "ATTP-2026-0042",
            "issued": "2026-01-05",
            "expires": "2029-01-05",
            "status": "valid",
        },
    }
    data.update(changes)
    return data


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[RecordStore]:
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def records_service(
    store: RecordStore, clock: Clock | None = None, **options: Any
) -> RecordsService:
    return RecordsService(store, city_types(), clock=clock, retention=30 * DAY, **options)


@contextlib.asynccontextmanager
async def serving(service: RecordsService, tokens: Tokens) -> AsyncIterator[GrpcServer]:
    async with build_server(GrpcSettings(port=0), service, tokens.verifier()) as server:
        yield server


@contextlib.asynccontextmanager
async def client(
    server: GrpcServer, token: str
) -> AsyncIterator[records_pb2_grpc.RecordsServiceStub]:
    async with channel(server.address, token=token) as connection:
        yield records_pb2_grpc.RecordsServiceStub(connection)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def details(error: grpc.aio.AioRpcError) -> list[Any]:
    """The ``google.rpc`` details of a refusal, unpacked."""
    from google.rpc import error_details_pb2

    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "the refusal carries no details"
    found = []
    for item in status.details:
        for kind in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
            if item.Is(kind.DESCRIPTOR):
                message = kind()
                item.Unpack(message)
                found.append(message)
    return found
