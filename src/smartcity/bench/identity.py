"""``smartcity bench identity``: what authentication costs a request, next to its ceilings.

Every request to every service pays for local token verification, so that is the hot path:

* **first sight** of a token: distinct tokens, each verified once (signature, claims), next
  to the Ed25519 engine alone (``cryptography``) verifying the same signatures: the ceiling;
* **again**: the same token on call after call, as a client uses it for its whole lifetime
  (the verifier remembers verified tokens; expiry and revocation are still checked);
* **in a real gRPC call**: unary calls on a loopback server, with and without the auth
  interceptor in the chain, in the same run;
* **logins**: one argon2id hash with the parameters identity uses, next to logins/s through
  the identity service's domain on SQLite (password check, lockout bookkeeping, token
  issue, audit record): a login is the hash and little else.

Figures depend on the machine by 2-3x; read the ratios.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from smartcity.monitoring.v1 import monitoring_pb2, monitoring_pb2_grpc
from smartcity.runtime.auth import Authenticated, AuthInterceptor, permission
from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.grpc_server import GrpcServer
from smartcity.runtime.tokens import DEFAULT_ISSUER, KeySet, TokenVerifier, thumbprint
from smartcity.runtime.trust import LocalAuthenticator

__all__ = ["TARGET_VERIFICATIONS_PER_SECOND", "IdentityBenchResult", "run_identity_bench"]

TARGET_VERIFICATIONS_PER_SECOND = 20_000
CONCURRENT_CALLS = 8


@dataclass(frozen=True)
class IdentityBenchResult:
    tokens: int
    first_sight_per_second: float
    signature_engine_per_second: float
    again_per_second: float
    calls: int
    calls_without_auth_per_second: float
    calls_with_auth_per_second: float
    argon2_hash_ms: float
    logins_per_second: float


class _Signer:
    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.kid = thumbprint(self.key.public_key())
        self.keys = KeySet({self.kid: self.key.public_key()})

    def token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": DEFAULT_ISSUER,
            "sub": "bench-operator",
            "aud": ["smartcity"],
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
            "kind": "staff",
            "roles": ["operator:electricity", "viewer:*"],
            "amr": ["pwd", "otp"],
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})


def _rate(count: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return count / (time.perf_counter() - started)


def _signature_parts(token: str) -> tuple[bytes, bytes]:
    head, body, signature = token.split(".")
    padded = signature + "=" * (-len(signature) % 4)
    return f"{head}.{body}".encode(), base64.urlsafe_b64decode(padded)


def _verification(tokens: int) -> tuple[float, float, float]:
    signer = _Signer()
    distinct = [signer.token() for _ in range(tokens)]
    verifier = TokenVerifier(signer.keys)
    verifier.verify(signer.token())  # warm-up: imports, first-call costs

    def first_sight() -> None:
        for token in distinct:
            verifier.verify(token)

    public = signer.keys[signer.kid]
    parts = [_signature_parts(token) for token in distinct]

    def engine() -> None:
        for signed, signature in parts:
            public.verify(signature, signed)

    same = distinct[0]

    def again() -> None:
        for _ in range(tokens * 10):
            verifier.verify(same)

    return _rate(tokens, first_sight), _rate(tokens, engine), _rate(tokens * 10, again)


def _bench_servicer() -> type:
    """The monitoring API with every method answering at once, each open to any caller
    with a valid token: the work measured is the interceptor's, not a servicer's."""

    def handler(response: Any) -> Any:
        async def answer(self: Any, request: Any, context: Any) -> Any:
            return response

        return answer

    namespace = {
        method.name: permission(Authenticated())(
            handler(getattr(monitoring_pb2, method.output_type.name)())
        )
        for method in monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].methods
    }
    return type("BenchServicer", (monitoring_pb2_grpc.MonitoringServiceServicer,), namespace)


@contextlib.asynccontextmanager
async def _server(verifier: TokenVerifier | None) -> AsyncIterator[GrpcServer]:
    registrations = [
        (monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server, _bench_servicer()())
    ]
    auth = None
    if verifier is not None:
        auth = AuthInterceptor.for_servicers(registrations, LocalAuthenticator(verifier))
    async with GrpcServer(
        GrpcSettings(port=0, reflection=False),
        registrations,
        service_names=["smartcity.monitoring.v1.MonitoringService"],
        auth=auth,
    ) as server:
        yield server


async def _calls_per_second(server: GrpcServer, token: str | None, calls: int) -> float:
    async with channel(server.address, token=token) as connection:
        stub = monitoring_pb2_grpc.MonitoringServiceStub(connection)
        request = monitoring_pb2.ListFieldsRequest()
        for _ in range(50):
            await stub.ListFields(request)

        async def worker(count: int) -> None:
            for _ in range(count):
                await stub.ListFields(request)

        started = time.perf_counter()
        await asyncio.gather(*(worker(calls // CONCURRENT_CALLS) for _ in range(CONCURRENT_CALLS)))
        return (calls // CONCURRENT_CALLS * CONCURRENT_CALLS) / (time.perf_counter() - started)


async def _grpc(calls: int) -> tuple[float, float]:
    signer = _Signer()
    async with _server(None) as plain:
        without = await _calls_per_second(plain, None, calls)
    verifier = TokenVerifier(signer.keys)
    async with _server(verifier) as guarded:
        with_auth = await _calls_per_second(guarded, signer.token(), calls)
    return without, with_auth


async def _logins_per_second(count: int) -> float:
    import tempfile
    from pathlib import Path

    from smartcity.runtime.config import IdentitySettings, Settings
    from smartcity.services.identity.app import open_identity
    from smartcity.services.identity.model import NewPrincipal, PrincipalKind
    from smartcity.services.identity.service import local_operator

    password = "correct horse battery staple"
    with tempfile.TemporaryDirectory(prefix="smartcity-bench-identity-") as folder:
        url = f"sqlite:///{Path(folder) / 'identity.db'}"
        settings = Settings(data_dir=Path(folder), identity=IdentitySettings(store_url=url))
        async with open_identity(settings) as service:
            await service.issuer.refresh_keys()
            await service.create_principal(
                NewPrincipal(PrincipalKind.STAFF, "bench.operator"), password, "", local_operator()
            )
            await service.logins.login("bench.operator", password, "", "bench")  # warm-up
            started = time.perf_counter()
            for _ in range(count):
                await service.logins.login("bench.operator", password, "", "bench")
            return count / (time.perf_counter() - started)


def _argon2_ms() -> float:
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    hasher.hash("warm-up password")
    rounds = 5
    started = time.perf_counter()
    for n in range(rounds):
        hasher.hash(f"correct horse battery staple {n}")
    return (time.perf_counter() - started) / rounds * 1000


async def run_identity_bench_async(
    *,
    tokens: int = 2000,
    calls: int = 4000,
    logins: int = 10,
    progress: Callable[[str], None] = lambda message: None,
) -> IdentityBenchResult:
    progress("token verification")
    first, engine, again = _verification(tokens)
    progress("gRPC calls with and without the auth interceptor")
    without, with_auth = await _grpc(calls)
    progress("argon2id")
    argon2_ms = _argon2_ms()
    progress("logins through the identity service")
    login_rate = await _logins_per_second(logins)
    return IdentityBenchResult(
        tokens=tokens,
        first_sight_per_second=first,
        signature_engine_per_second=engine,
        again_per_second=again,
        calls=calls,
        calls_without_auth_per_second=without,
        calls_with_auth_per_second=with_auth,
        argon2_hash_ms=argon2_ms,
        logins_per_second=login_rate,
    )


def run_identity_bench(**options: Any) -> IdentityBenchResult:
    return asyncio.run(run_identity_bench_async(**options))
