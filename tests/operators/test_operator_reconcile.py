"""Reconciliation against KMock without kopf: idempotent, and harmless when the spec is bad."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client
from operator_support import NAMESPACE, NATS_URL, declare_resources

from smartcity.operators import reconcile
from smartcity.operators.crds import API_VERSION
from smartcity.operators.kube import Cluster


@pytest.fixture
async def cluster(kmock: Any) -> AsyncIterator[Cluster]:
    declare_resources(kmock)
    kmock.objects["v1/secrets", NAMESPACE, "postgres"] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "postgres", "namespace": NAMESPACE},
        "data": {"url": base64.b64encode(b"postgresql://city@db/city").decode()},
    }
    configuration = client.Configuration(host=str(kmock.url).rstrip("/"))
    async with client.ApiClient(configuration) as api:
        yield Cluster(api)


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "SmartCity",
        "metadata": {"name": "danang", "namespace": NAMESPACE, "uid": "u-1", "generation": 1},
        "spec": {"storage": {"secretRef": {"name": "postgres", "key": "url"}}, **spec},
    }


def writes(kmock: Any) -> list[str]:
    return [
        f"{request.method} {request.url}"
        for request in kmock
        if str(request.method).upper().rsplit(".", 1)[-1] in ("POST", "PATCH", "PUT", "DELETE")
    ]


async def test_running_twice_changes_nothing_the_second_time(kmock: Any, cluster: Cluster) -> None:
    first = await reconcile.reconcile_city(cluster, body(), NATS_URL)
    assert any(change.startswith("created Deployment") for change in first.changes)
    before = len(writes(kmock))
    assert before >= len(first.changes)

    second = await reconcile.reconcile_city(cluster, body(), NATS_URL)

    assert second.changes == []
    assert writes(kmock)[before:] == []
    assert second.status["conditions"][2]["type"] == "Degraded"
    assert second.status["conditions"][2]["status"] == "False"


async def test_switching_a_service_off_removes_only_its_children(
    kmock: Any, cluster: Cluster
) -> None:
    await reconcile.reconcile_city(cluster, body(), NATS_URL)
    outcome = await reconcile.reconcile_city(
        cluster, body(services={"alerts": {"enabled": False}}), NATS_URL
    )
    assert sorted(outcome.changes) == [
        "deleted ConfigMap danang-alerts-config",
        "deleted Deployment danang-alerts",
        "deleted NetworkPolicy danang-alerts",
        "deleted PodDisruptionBudget danang-alerts",
        "deleted Service danang-alerts",
    ]
    assert outcome.status["services"].keys() == {"identity", "records", "monitoring"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"services": {"monitoring": {"replicas": "many"}}}, "spec.services.monitoring.replicas"),
        ({"servicez": {}}, "spec.servicez: unknown field"),
        ({"config": {"nats": {"ulr": "x"}}}, "spec.config.nats.ulr: unknown key"),
        ({"storage": {}}, "spec.services.identity.replicas: 2 replicas need"),
        ({"nats": {"url": "http://nats"}}, "spec.nats.url"),
    ],
)
async def test_a_bad_spec_is_reported_and_nothing_is_written(
    kmock: Any, cluster: Cluster, spec: dict[str, Any], field: str
) -> None:
    await reconcile.reconcile_city(cluster, body(), NATS_URL)
    before = len(writes(kmock))
    outcome = await reconcile.reconcile_city(cluster, body(**spec), NATS_URL)
    assert outcome.changes == []
    assert writes(kmock)[before:] == []
    degraded = outcome.status["conditions"][2]
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert field in degraded["message"]


def agent_body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EdgeAgent",
        "metadata": {"name": "cau-do", "namespace": NAMESPACE, "uid": "u-2", "generation": 1},
        "spec": {"site": "cau-do", "field": "water_supply", **spec},
    }


async def test_a_missing_reference_is_retried_and_nothing_is_written(
    kmock: Any, cluster: Cluster
) -> None:
    before = len(writes(kmock))
    outcome = await reconcile.reconcile_agent(
        cluster,
        agent_body(
            profilesConfigMap={"name": "absent"},
            nats={"credentialsSecret": {"name": "postgres", "key": "nope"}},
        ),
        NATS_URL,
    )
    assert outcome.retry is not None
    assert "configmap 'absent' not found" in outcome.retry.message
    assert "secret 'postgres' has no key 'nope'" in outcome.retry.message
    degraded = outcome.status["conditions"][2]
    assert (degraded["status"], degraded["reason"]) == ("True", "MissingReference")
    assert outcome.changes == []
    assert writes(kmock)[before:] == []


async def test_an_agent_is_made_then_left_alone(kmock: Any, cluster: Cluster) -> None:
    profile = {
        "site": "cau-do",
        "field": "water_supply",
        "device": "flow-1",
        "protocol": "modbus",
        "endpoint": "tcp://10.30.0.9:502",
        "points": [{"name": "flow", "unit": "m3/h", "address": 0, "type": "float32"}],
    }
    first = await reconcile.reconcile_agent(cluster, agent_body(profiles=[profile]), NATS_URL)
    assert sorted(first.changes) == [
        "created ConfigMap cau-do-agent",
        "created Deployment cau-do-agent",
    ]
    assert first.status["devices"] == ["flow-1"]
    assert first.status["selector"].startswith("app.kubernetes.io/name=smartcity")
    before = len(writes(kmock))
    again = await reconcile.reconcile_agent(cluster, agent_body(profiles=[profile]), NATS_URL)
    assert again.changes == []
    assert writes(kmock)[before:] == []
