"""The alerts tests' storage: a test that asks for ``store`` runs on SQLite and on
PostgreSQL (a fresh schema; strict mode makes a missing server a failure)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alerts_support import BACKENDS, backend_url, opened_store

from smartcity.services.alerts.store import AlertStore


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request, tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[AlertStore]:
    async with opened_store(store_url) as opened:
        yield opened
