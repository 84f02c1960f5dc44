"""The monitoring tests' storage: each test that asks for ``store_url`` runs on SQLite and on
PostgreSQL (a fresh schema; strict mode makes a missing server a failure)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from monitoring_support import BACKENDS, backend_url, opened_store

from smartcity.services.monitoring.store import TimeSeriesStore


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[TimeSeriesStore]:
    """An empty store, opened (modules that need data in it define their own)."""
    async with opened_store(store_url) as opened:
        yield opened
