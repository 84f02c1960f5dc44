"""The records tests' storage: each test that asks for ``store_url`` runs on SQLite and on
PostgreSQL (a fresh schema; strict mode makes a missing server a failure)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from records_support import BACKENDS, Clock, Tokens, backend_url, opened

from smartcity.services.records.store import RecordStore


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[RecordStore]:
    async with opened(store_url) as opened_store:
        yield opened_store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens()
