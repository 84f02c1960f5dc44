"""The identity tests' storage: each test that asks for ``store_url`` runs on SQLite and on
PostgreSQL (a fresh schema; strict mode makes a missing server a failure)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from identity_support import BACKENDS, Clock, backend_url, clock_now, identity_settings, opened

from smartcity.runtime.config import Settings
from smartcity.services.identity.service import IdentityService


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@pytest.fixture
def clock() -> Clock:
    return clock_now()


@pytest.fixture
def settings(store_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, identity=identity_settings(store_url))


@pytest.fixture
async def identity(settings: Settings, clock: Clock) -> AsyncIterator[IdentityService]:
    async with opened(settings, clock) as service:
        yield service
