"""Suite-wide test policy.

CI sets ``SMARTCITY_TEST_STRICT=1``: there every test must run, so a test that would be
skipped (a missing PostgreSQL, a missing tool such as ``socat``) fails instead, naming what
was missing. On a laptop the same test is skipped with the same message.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest

from smartcity.runtime.bus import Bus
from smartcity.runtime.config import NatsSettings
from smartcity.runtime.nats_server import EmbeddedNats

STRICT = os.environ.get("SMARTCITY_TEST_STRICT", "") not in ("", "0", "false", "no")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in strict mode (SMARTCITY_TEST_STRICT=1): {reason}"
    return report


# -- gRPC servers are released while their test's event loop still runs ---------------------

_SERVES_GRPC: dict[str, bool] = {}


def _serves_grpc(module: object) -> bool:
    """Whether a test module starts gRPC servers (it names grpc.aio, the runtime's server or
    the monitoring service's)."""
    name = getattr(module, "__name__", "")
    if name not in _SERVES_GRPC:
        text = Path(getattr(module, "__file__", "") or "").read_text(encoding="utf-8")
        _SERVES_GRPC[name] = any(
            marker in text for marker in ("GrpcServer", "build_server", "run_service", "grpc.aio")
        )
    return _SERVES_GRPC[name]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    # A grpc.aio server that the garbage collector frees after its event loop has closed
    # (during a later test) can corrupt the heap of the test process, which then crashes at
    # some later allocation. Collecting right after each such test, before its fixtures and
    # its loop are torn down, frees them in order.
    if _serves_grpc(getattr(item, "module", None)):
        gc.collect()


# -- NATS: a real nats-server per test, on a port it picks, in the test's tmp_path ----------


@pytest.fixture
def nats_settings(tmp_path: Path) -> NatsSettings:
    # Short waits keep reconnect tests fast; port 0 keeps clear of any NATS on 4222.
    return NatsSettings(
        data_dir=tmp_path / "nats",
        port=0,
        reconnect_wait_seconds=0.1,
        connect_timeout_seconds=5,
    )


@pytest.fixture
def nats_server(nats_settings: NatsSettings) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(nats_settings) as server:
        yield server


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[Bus]:
    connected = await Bus.connect(nats_server.client_settings(), name="test-bus")
    yield connected
    await connected.close()


# -- PostgreSQL: a fresh schema per test in the server named by SMARTCITY_TEST_POSTGRES_URL -


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a new, empty schema, dropped afterwards.

    Skips when ``SMARTCITY_TEST_POSTGRES_URL`` is unset or the server does not answer; CI
    sets the variable and strict mode, so there the skip is a failure.
    """
    import uuid

    import asyncpg

    base = os.environ.get("SMARTCITY_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("SMARTCITY_TEST_POSTGRES_URL is not set (postgresql://user@host/db)")
    try:
        admin = await asyncpg.connect(base, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at SMARTCITY_TEST_POSTGRES_URL does not answer: {exc}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
