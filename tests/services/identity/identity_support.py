"""Building the identity service for its tests: real stores on both backends, argon2 made
cheap through the settings (production keeps argon2-cffi's defaults), and a clock the tests
move."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

from smartcity.runtime.config import IdentitySettings, Settings
from smartcity.runtime.service import Running, ServiceSpec, run_service
from smartcity.services.identity.app import IDENTITY, open_identity
from smartcity.services.identity.model import NewPrincipal, PrincipalKind
from smartcity.services.identity.service import IdentityService, local_operator

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PASSWORD = "correct horse battery staple"
FAST_ARGON2: dict[str, Any] = {
    "argon2_time_cost": 1,
    "argon2_memory_kib": 64,
    "argon2_parallelism": 1,
}


def backend_url(request: pytest.FixtureRequest, folder: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{folder / 'identity.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def identity_settings(store_url: str, **overrides: Any) -> IdentitySettings:
    return IdentitySettings(store_url=store_url, http_port=0, **{**FAST_ARGON2, **overrides})


@dataclass
class Clock:
    """Seconds since the epoch, starting now (tokens are checked against the real time) and
    moved forward by the tests."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def clock_now() -> Clock:
    return Clock(time.time())


@contextlib.asynccontextmanager
async def opened(
    settings: Settings, clock: Clock, publisher: Any = None
) -> AsyncIterator[IdentityService]:
    async with open_identity(settings, publisher=publisher, clock=clock) as service:
        await service.issuer.refresh_keys()
        yield service


async def add_staff(
    service: IdentityService, username: str, *roles: str, password: str = PASSWORD
) -> str:
    """A staff principal with ``roles`` (``operator:electricity``), made by the command line's
    actor; its id."""
    from smartcity.runtime.tokens import RoleBinding

    admin = local_operator()
    created = await service.create_principal(
        NewPrincipal(PrincipalKind.STAFF, username), password, "", admin
    )
    for role in roles:
        await service.change_role(created.id, RoleBinding.parse(role), True, admin)
    return created.id


def totp_code(secret: str, at: float) -> str:
    return pyotp.TOTP(secret).at(at)


@contextlib.asynccontextmanager
async def running_service(spec: ServiceSpec, settings: Settings) -> AsyncIterator[Running]:
    """A service as ``smartcity serve`` runs it, until the block ends."""
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(spec, settings, stop, on_ready=ready.set_result))
    try:
        await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def running_identity(settings: Settings) -> contextlib.AbstractAsyncContextManager[Running]:
    return running_service(IDENTITY, settings)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)
