"""The operator, running under kopf against KMock, turns custom resources into workloads."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml
from operator_support import NAMESPACE, Kubectl, VersionedEmulator
from support import eventually

from smartcity.operators.crds import API_VERSION
from smartcity.operators.pods import CONFIG_HASH

pytestmark = pytest.mark.kmock(cls=VersionedEmulator)

WITHIN = 60.0  # generous: two loaded cores, kopf's watch streams and back-off
PROFILE = {
    "site": "hoa-khanh-110kv",
    "field": "electricity",
    "device": "bay-1-meter",
    "protocol": "modbus",
    "endpoint": "tcp://10.20.0.5:502",
    "unit_id": 1,
    "poll_interval": "1s",
    "points": [{"name": "voltage_an", "unit": "kV", "address": 0, "type": "float32"}],
}


def city(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "SmartCity",
        "metadata": {
            "name": "danang",
            "namespace": NAMESPACE,
            "uid": "uid-danang",
        },
        "spec": {
            "storage": {"secretRef": {"name": "postgres", "key": "url"}},
            "services": {"alerts": {"enabled": False}},
            **spec,
        },
    }


def seed_secret(kubectl: Kubectl, name: str = "postgres") -> None:
    url = base64.b64encode(b"postgresql://city@db/city").decode()
    kubectl.kmock.objects["v1/secrets", NAMESPACE, name] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"url": url},
    }


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def observed(kubectl: Kubectl) -> Any:
    found = kubectl.get(f"{API_VERSION}/smartcities", "danang") or {}
    return (found.get("status") or {}).get("observedGeneration")


SERVICES = ("identity", "records", "monitoring")
CHILDREN = (
    "apps/v1/deployments",
    "v1/services",
    "networking.k8s.io/v1/networkpolicies",
    "policy/v1/poddisruptionbudgets",
)


async def test_a_city_becomes_its_workloads_and_reports_ready(operator: Kubectl) -> None:
    seed_secret(operator)
    await operator.create("smartcities", city())
    await eventually(
        lambda: all(
            operator.get(resource, f"danang-{service}") is not None
            for resource in CHILDREN
            for service in SERVICES
        ),
        within=WITHIN,
        what="every enabled service's children",
    )
    deployments = operator.owned_names("apps/v1/deployments")
    assert "danang-alerts" not in deployments  # switched off in the spec
    for service in SERVICES:
        name = f"danang-{service}"
        for resource in CHILDREN:
            child = operator.get(resource, name)
            assert child is not None, f"{resource} {name}"
            (owner,) = child["metadata"]["ownerReferences"]
            assert owner["uid"] == "uid-danang"
            assert owner["kind"] == "SmartCity"
            assert owner["controller"] is True
        assert operator.get("v1/configmaps", f"{name}-config") is not None
    assert any(name.startswith("danang-streams-") for name in operator.owned_names("batch/v1/jobs"))

    await eventually(
        lambda: (
            condition(operator.get(f"{API_VERSION}/smartcities", "danang"), "Progressing").get(
                "status"
            )
            == "True"
        ),
        within=WITHIN,
        what="Progressing while the pods start",
    )
    found = operator.get(f"{API_VERSION}/smartcities", "danang")
    assert condition(found, "Progressing")["status"] == "True"  # no pod is ready yet
    assert condition(found, "Ready")["status"] == "False"
    assert condition(found, "Degraded")["status"] == "False"

    for service in SERVICES:
        await operator.deployment_status(
            f"danang-{service}", {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
        )
    await eventually(
        lambda: (
            condition(operator.get(f"{API_VERSION}/smartcities", "danang"), "Ready").get("status")
            == "True"
        ),
        within=WITHIN,
        what="Ready once every Deployment has its replicas",
    )
    status = operator.get(f"{API_VERSION}/smartcities", "danang")["status"]
    assert status["ready"] == "3/3"
    assert status["services"]["monitoring"] == "2/2"


async def test_changes_patch_the_children_and_roll_the_pods(operator: Kubectl) -> None:
    seed_secret(operator)
    await operator.create("smartcities", city())
    await eventually(lambda: observed(operator) == 1, within=WITHIN, what="generation 1 done")
    before = operator.get("apps/v1/deployments", "danang-monitoring")
    hash_before = before["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]

    await operator.patch(
        "smartcities",
        "danang",
        {
            "spec": {
                "services": {"monitoring": {"replicas": 4}, "records": {"replicas": 1}},
                "config": {"monitoring": {"retention_raw_days": 90}},
            },
        },
    )

    def monitoring() -> dict[str, Any]:
        return operator.get("apps/v1/deployments", "danang-monitoring") or {}

    await eventually(
        lambda: monitoring().get("spec", {}).get("replicas") == 4,
        within=WITHIN,
        what="the monitoring Deployment scaled to 4",
    )
    hash_after = monitoring()["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]
    assert hash_after != hash_before
    config = operator.get("v1/configmaps", "danang-monitoring-config")["data"]["config.yaml"]
    assert yaml.safe_load(config)["monitoring"]["retention_raw_days"] == 90
    # One replica needs no disruption budget; its Deployment stays.
    await eventually(
        lambda: operator.get("policy/v1/poddisruptionbudgets", "danang-records") is None,
        within=WITHIN,
        what="the records PodDisruptionBudget removed",
    )
    assert operator.get("apps/v1/deployments", "danang-records")["spec"]["replicas"] == 1
    await eventually(
        lambda: (
            (operator.get(f"{API_VERSION}/smartcities", "danang") or {})
            .get("status", {})
            .get("observedGeneration")
            == 2
        ),
        within=WITHIN,
        what="observedGeneration 2",
    )


async def test_an_invalid_spec_is_degraded_and_leaves_the_workloads_alone(
    operator: Kubectl,
) -> None:
    seed_secret(operator)
    await operator.create("smartcities", city())
    await eventually(lambda: observed(operator) == 1, within=WITHIN, what="generation 1 done")
    running = operator.get("apps/v1/deployments", "danang-identity")
    # Schema-valid nowhere (the API server would refuse it), but KMock has no schema: the
    # operator's own validation must hold the line.
    await operator.patch(
        "smartcities",
        "danang",
        {"spec": {"services": {"identity": {"replicas": -3}}}},
    )
    await eventually(
        lambda: (
            condition(operator.get(f"{API_VERSION}/smartcities", "danang"), "Degraded").get(
                "reason"
            )
            == "InvalidSpec"
        ),
        within=WITHIN,
        what="Degraded: InvalidSpec",
    )
    degraded = condition(operator.get(f"{API_VERSION}/smartcities", "danang"), "Degraded")
    assert degraded["status"] == "True"
    assert "spec.services.identity.replicas" in degraded["message"]
    assert operator.get("apps/v1/deployments", "danang-identity") == running
    assert {f"danang-{s}" for s in SERVICES} <= operator.owned_names("apps/v1/deployments")

    # A spec that names a secret that does not exist: the same, and retried.
    await operator.patch(
        "smartcities",
        "danang",
        {
            "spec": {
                "services": {"identity": {"replicas": 2}},
                "storage": {"secretRef": {"name": "missing", "key": "url"}},
            },
        },
    )
    await eventually(
        lambda: (
            condition(operator.get(f"{API_VERSION}/smartcities", "danang"), "Degraded").get(
                "reason"
            )
            == "MissingReference"
        ),
        within=WITHIN,
        what="Degraded: MissingReference",
    )
    degraded = condition(operator.get(f"{API_VERSION}/smartcities", "danang"), "Degraded")
    assert "secret 'missing' not found" in degraded["message"]
    assert operator.get("apps/v1/deployments", "danang-identity") == running


async def test_deleting_a_city_removes_its_children(operator: Kubectl) -> None:
    seed_secret(operator)
    await operator.create("smartcities", city())
    await eventually(lambda: observed(operator) == 1, within=WITHIN, what="generation 1 done")
    await operator.delete("smartcities", "danang")
    await eventually(
        lambda: (
            not operator.owned_names("apps/v1/deployments")
            and not operator.owned_names("v1/configmaps")
            and not operator.owned_names("batch/v1/jobs")
            and operator.get(f"{API_VERSION}/smartcities", "danang") is None
        ),
        within=WITHIN,
        what="the children and the city gone",
    )
    assert not operator.owned_names("v1/services")
    assert not operator.owned_names("networking.k8s.io/v1/networkpolicies")


def agent(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EdgeAgent",
        "metadata": {
            "name": "hoa-khanh",
            "namespace": NAMESPACE,
            "uid": "uid-agent",
        },
        "spec": {"site": "hoa-khanh-110kv", "field": "electricity", **spec},
    }


async def test_an_edge_agent_runs_its_profiles_and_refuses_a_broken_one(
    operator: Kubectl,
) -> None:
    operator.kmock.objects["v1/configmaps", NAMESPACE, "hoa-khanh-profiles"] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "hoa-khanh-profiles", "namespace": NAMESPACE},
        "data": {"bay-1.yaml": yaml.safe_dump(PROFILE)},
    }
    await operator.create(
        "edgeagents",
        agent(
            {
                "profilesConfigMap": {"name": "hoa-khanh-profiles"},
                "placement": {
                    "nodeSelector": {"smartcity.danang.vn/site": "hoa-khanh-110kv"},
                    "tolerations": [{"key": "edge", "operator": "Exists"}],
                },
            }
        ),
    )
    await eventually(
        lambda: operator.get("apps/v1/deployments", "hoa-khanh-agent") is not None,
        within=WITHIN,
        what="the agent Deployment",
    )
    deployment = operator.get("apps/v1/deployments", "hoa-khanh-agent")
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-agent"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"smartcity.danang.vn/site": "hoa-khanh-110kv"}
    assert "/etc/smartcity/agent/profile-bay-1-meter.yaml" in pod["containers"][0]["command"]
    profiles = operator.get("v1/configmaps", "hoa-khanh-agent")["data"]
    assert yaml.safe_load(profiles["profile-bay-1-meter.yaml"]) == PROFILE
    await eventually(
        lambda: (
            (operator.get(f"{API_VERSION}/edgeagents", "hoa-khanh") or {})
            .get("status", {})
            .get("devices")
            == ["bay-1-meter"]
        ),
        within=WITHIN,
        what="the agent's status",
    )

    # A profile that does not parse: Degraded, named, and the agent keeps running.
    operator.kmock.objects["v1/configmaps", NAMESPACE, "hoa-khanh-profiles"] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "hoa-khanh-profiles", "namespace": NAMESPACE},
        "data": {"bay-1.yaml": "site: [unclosed"},
    }
    await operator.patch("edgeagents", "hoa-khanh", {"spec": {"replicas": 1, "logging": {}}})
    await eventually(
        lambda: (
            condition(operator.get(f"{API_VERSION}/edgeagents", "hoa-khanh"), "Degraded").get(
                "reason"
            )
            == "InvalidSpec"
        ),
        within=WITHIN,
        what="Degraded: InvalidSpec",
    )
    degraded = condition(operator.get(f"{API_VERSION}/edgeagents", "hoa-khanh"), "Degraded")
    assert "configmap/hoa-khanh-profiles key bay-1.yaml" in degraded["message"]
    assert "invalid YAML" in degraded["message"]
    assert operator.get("apps/v1/deployments", "hoa-khanh-agent") == deployment
