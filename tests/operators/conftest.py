"""The ``operator`` fixture: the operator running under kopf against KMock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kubernetes_asyncio import client
from operator_support import NATS_URL, Kubectl, declare_resources

from smartcity.operators import handlers


@pytest.fixture
async def operator(kmock: Any) -> AsyncIterator[Kubectl]:
    """The operator running against KMock; yields a kubectl of the same server."""
    declare_resources(kmock)
    settings = kopf.OperatorSettings()
    settings.scanning.disabled = True
    settings.peering.standalone = True
    # A loaded machine must not make kopf think the watch stream died.
    settings.watching.connect_timeout = 30
    options = handlers.Options(api_server=str(kmock.url).rstrip("/"), nats_url=NATS_URL)
    stop = asyncio.Event()
    # kopf waits for, then cancels, every task started after it that it was not told to
    # ignore; the fixture's own teardown is one of them, so it is added before stopping.
    ignored = set(asyncio.all_tasks())
    tasks = await kopf.spawn_tasks(
        registry=handlers.registry,
        settings=settings,
        clusterwide=True,
        standalone=True,
        stop_flag=stop,
        memo=kopf.Memo(options=options),
    )
    running = asyncio.create_task(kopf.run_tasks(tasks, ignored=ignored))
    configuration = client.Configuration(host=str(kmock.url).rstrip("/"))
    async with client.ApiClient(configuration) as api:
        try:
            yield Kubectl(kmock, api)
        finally:
            ignored.update(asyncio.all_tasks())
            ignored.discard(running)
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(running, timeout=60)
