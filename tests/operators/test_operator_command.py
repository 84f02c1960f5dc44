"""``smartcity operator`` as DevOps run it: a process that serves its liveness endpoint,
reconciles what it is given and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from operator_support import NAMESPACE, NATS_URL, Kubectl, VersionedEmulator, declare_resources
from support import eventually

from smartcity.operators.crds import API_VERSION

pytestmark = pytest.mark.kmock(cls=VersionedEmulator)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


async def test_the_command_serves_liveness_reconciles_and_stops(kmock: Any, tmp_path: Path) -> None:
    declare_resources(kmock)
    kmock.objects["v1/secrets", NAMESPACE, "postgres"] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "postgres", "namespace": NAMESPACE},
        "data": {"url": base64.b64encode(b"postgresql://city@db/city").decode()},
    }
    # The chart's invocation: replicas peer through a ClusterKopfPeering.
    kmock.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
        namespaced=False,
        kind="ClusterKopfPeering",
        singular="clusterkopfpeering",
        verbs={"get", "list", "watch", "patch"},
    )
    kmock.objects["kopf.dev/v1/clusterkopfpeerings", None, "city-smartcity"] = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "city-smartcity"},
    }
    server = str(kmock.url).rstrip("/")
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    log = (tmp_path / "operator.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smartcity.cli.main",
        "operator",
        "--server",
        server,
        "--nats",
        NATS_URL,
        "--liveness",
        liveness,
        "--peering",
        "city-smartcity",
        "--priority",
        "100",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    try:
        await eventually(
            lambda: asyncio.to_thread(healthy, liveness), within=60, what="the liveness endpoint"
        )
        async with client.ApiClient(client.Configuration(host=server)) as api:
            kubectl = Kubectl(kmock, api)
            await kubectl.create(
                "smartcities",
                {
                    "apiVersion": API_VERSION,
                    "kind": "SmartCity",
                    "metadata": {"name": "danang", "namespace": NAMESPACE, "uid": "u-cli"},
                    "spec": {"storage": {"secretRef": {"name": "postgres", "key": "url"}}},
                },
            )
            await eventually(
                lambda: kubectl.get("apps/v1/deployments", "danang-monitoring") is not None,
                within=60,
                what="the operator process to make the monitoring Deployment",
            )
        peering = (kmock.resource("kopf.dev/v1/clusterkopfpeerings"), None, "city-smartcity")

        def peers() -> list[dict[str, Any]]:
            return list((kmock.objects[peering].get("status") or {}).values())

        await eventually(lambda: bool(peers()), within=60, what="the peering keep-alive")
        assert peers()[0]["priority"] == 100
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=60)
        assert process.returncode == 0, (tmp_path / "operator.log").read_text()[-2000:]
    finally:
        log.close()
        if process.returncode is None:
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
