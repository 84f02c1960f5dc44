"""The manifests built from a spec, without any API server: valid for a current Kubernetes,
hardened, configured so that the platform's own configuration loader accepts them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes_validate.utils import latest_version

from smartcity.operators import city, edge
from smartcity.operators.model import SpecError, parse_edgeagent, parse_smartcity
from smartcity.operators.pods import CONFIG_HASH
from smartcity.operators.services import GRPC_PORT, SERVICES
from smartcity.runtime.config import load_settings

KUBERNETES = latest_version()
NATS = "nats://nats.danang:4222"
PRODUCTION = {
    "image": {"repository": "registry.danang.vn/smartcity", "tag": "1.2.3"},
    "nats": {"clusterSize": 5, "credentialsSecret": {"name": "nats-creds", "key": "creds"}},
    "storage": {"secretRef": {"name": "postgres", "key": "url"}},
    "telemetry": {"otlpEndpoint": "http://otel-collector:4317"},
    "services": {"console": {"enabled": True, "replicas": 1}, "monitoring": {"replicas": 3}},
    "config": {"monitoring": {"retention_raw_days": 90}},
}
PROFILE = {
    "site": "cau-do",
    "field": "water_supply",
    "device": "analyser-1",
    "protocol": "opcua",
    "endpoint": "opc.tcp://10.20.0.7:4840/station",
    "mode": "subscribe",
    "security": {"policy": "None", "mode": "None"},
    "points": [{"name": "ph", "unit": "pH", "node": "ns=2;s=Station1.pH"}],
}


def build(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return city.children("danang", "smartcity", parse_smartcity(spec), NATS)


def by_name(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("spec", [{}, PRODUCTION], ids=["defaults", "production"])
def test_every_child_is_a_valid_manifest(spec: dict[str, Any]) -> None:
    spec = {"storage": {"secretRef": {"name": "pg", "key": "url"}}} | spec
    objects = build(spec)
    assert objects
    for manifest in objects:
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def test_workloads_are_hardened_and_probed_over_grpc_health() -> None:
    objects = build(PRODUCTION)
    pod = by_name(objects, "Deployment", "danang-monitoring")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["grpc"] == {"port": GRPC_PORT}
    assert container["livenessProbe"]["grpc"] == {"port": GRPC_PORT}
    assert container["resources"]["limits"]["memory"]
    assert container["image"] == "registry.danang.vn/smartcity:1.2.3"
    assert container["command"][:3] == ["smartcity", "serve", "monitoring"]
    service = by_name(objects, "Service", "danang-monitoring")
    assert service["spec"]["ports"][0]["port"] == GRPC_PORT
    # The PostgreSQL URL comes from the secret, never from the ConfigMap.
    (variable,) = container["env"]
    assert variable["valueFrom"]["secretKeyRef"] == {"name": "postgres", "key": "url"}
    assert variable["name"] == "SMARTCITY_MONITORING__STORE_URL"


def test_only_enabled_services_run_and_budgets_need_two_replicas() -> None:
    objects = build(PRODUCTION | {"services": {"alerts": {"enabled": False}}})
    deployments = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    wanted = {f"danang-{name}" for name, kind in SERVICES.items() if kind.enabled_by_default}
    assert deployments == wanted - {"danang-alerts"}
    single = build(PRODUCTION | {"services": {"records": {"replicas": 1}}})
    budgets = {o["metadata"]["name"] for o in single if o["kind"] == "PodDisruptionBudget"}
    assert "danang-records" not in budgets
    assert "danang-identity" in budgets


def test_each_configuration_file_loads_with_the_platform_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("SMARTCITY_"):
            monkeypatch.delenv(name)
    objects = build(PRODUCTION)
    maps = [o for o in objects if o["kind"] == "ConfigMap"]
    # the streams Job's, and one per service: the default ones and the console
    assert len(maps) == 2 + sum(kind.enabled_by_default for kind in SERVICES.values())
    for config_map in maps:
        path = tmp_path / f"{config_map['metadata']['name']}.yaml"
        path.write_text(config_map["data"]["config.yaml"], encoding="utf-8")
        settings = load_settings(path)
        assert settings.nats.url == NATS
        assert settings.nats.embedded is False
        assert settings.grpc.port == GRPC_PORT
        assert settings.nats.streams.telemetry.replicas == 3  # five servers: R3
        assert settings.nats.streams.alerts.max_age_seconds == 30 * 24 * 3600  # default kept
        assert str(settings.nats.credentials_file) == city.NATS_CREDENTIALS
        assert settings.telemetry.exporter == "otlp"
    monitoring = by_name(objects, "ConfigMap", "danang-monitoring-config")
    assert yaml.safe_load(monitoring["data"]["config.yaml"])["monitoring"] == {
        "retention_raw_days": 90
    }


def test_the_configuration_hash_follows_the_configuration_not_the_replicas() -> None:
    def digest(spec: dict[str, Any]) -> str:
        deployment = by_name(build(spec), "Deployment", "danang-monitoring")
        return str(deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH])

    base = digest(PRODUCTION)
    assert digest(PRODUCTION | {"services": {"monitoring": {"replicas": 7}}}) == base
    assert digest(PRODUCTION | {"config": {"monitoring": {"retention_raw_days": 1}}}) != base
    assert digest(PRODUCTION | {"storage": {"secretRef": {"name": "pg2", "key": "url"}}}) != base


@pytest.mark.parametrize(("size", "replicas"), [(1, 1), (2, 2), (3, 3), (5, 3)])
def test_streams_get_the_replicas_the_nats_cluster_supports(size: int, replicas: int) -> None:
    objects = build(PRODUCTION | {"nats": {"clusterSize": size}})
    job = next(o for o in objects if o["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:3] == [
        "smartcity",
        "streams",
        "ensure",
    ]
    config_map = by_name(objects, "ConfigMap", "danang-streams-config")
    streams = yaml.safe_load(config_map["data"]["config.yaml"])["nats"]["streams"]
    assert {limits["replicas"] for limits in streams.values()} == {replicas}


def test_an_edge_agent_gets_its_profiles_placement_and_buffer() -> None:
    spec = parse_edgeagent(
        {
            "site": "cau-do",
            "field": "water_supply",
            "profiles": [PROFILE],
            "placement": {
                "nodeSelector": {"node-role.kubernetes.io/edge": ""},
                "tolerations": [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}],
            },
            "buffer": {"claimName": "cau-do-buffer"},
            "certificatesSecret": "cau-do-certs",
        }
    )
    devices = edge.profiles(spec)
    objects = edge.children("cau-do", "field", spec, devices, NATS)
    for manifest in objects:
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    config_map, deployment = objects
    assert yaml.safe_load(config_map["data"]["profile-analyser-1.yaml"]) == PROFILE
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["tolerations"] == [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "cau-do-buffer"}
    assert volumes["certs"]["secret"]["secretName"] == "cau-do-certs"
    agent_config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert agent_config["agent"]["id"] == "cau-do"


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (PROFILE | {"site": "elsewhere"}, "site 'elsewhere' is not the agent's"),
        (PROFILE | {"protocol": "bacnet"}, "spec.profiles[0]"),
        (PROFILE | {"word_ordr": "big"}, "spec.profiles[0]"),
    ],
)
def test_a_wrong_profile_is_refused_with_its_place(profile: dict[str, Any], message: str) -> None:
    spec = parse_edgeagent({"site": "cau-do", "field": "water_supply", "profiles": [profile]})
    with pytest.raises(SpecError) as refused:
        edge.profiles(spec)
    assert message in str(refused.value)


def test_profiles_must_come_from_one_place() -> None:
    with pytest.raises(SpecError, match="one of them"):
        parse_edgeagent({"site": "cau-do", "field": "water_supply"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
spec_like = st.dictionaries(
    st.sampled_from(["image", "nats", "storage", "services", "config", "auth", "x"]),
    json_values,
    max_size=4,
)


def refusal(work: Callable[[], object]) -> list[str] | None:
    """The problems ``work`` was refused with, or None when it was accepted."""
    try:
        work()
    except SpecError as exc:
        return exc.problems
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=spec_like | json_values)
def test_any_spec_is_accepted_or_refused_with_a_reason(spec: Any) -> None:
    problems = refusal(lambda: city.children("danang", "smartcity", parse_smartcity(spec), NATS))
    assert problems is None or problems
    assert all(problem.startswith(("spec", "metadata")) for problem in problems or [])


@settings(max_examples=100, deadline=None)
@given(document=st.text(max_size=200) | json_values.map(yaml.safe_dump))
def test_any_profile_config_map_is_accepted_or_refused_with_a_reason(document: str) -> None:
    spec = parse_edgeagent(
        {"site": "cau-do", "field": "water_supply", "profilesConfigMap": {"name": "p"}}
    )
    problems = refusal(lambda: edge.profiles(spec, {"device.yaml": document}))
    assert problems is None or problems
    assert all("configmap/p key device.yaml" in problem for problem in problems or [])


def test_a_service_of_the_table_brings_its_own_ports_and_settings() -> None:
    objects = build(PRODUCTION)
    service = by_name(objects, "Service", "danang-identity")
    assert {port["name"]: port["port"] for port in service["spec"]["ports"]} == {
        "grpc": GRPC_PORT,
        "metrics": 9464,
        "http": 8053,
    }
    policy = by_name(objects, "NetworkPolicy", "danang-identity")
    assert {p["port"] for p in policy["spec"]["ingress"][0]["ports"]} == {GRPC_PORT, 8053}
    config = yaml.safe_load(
        by_name(objects, "ConfigMap", "danang-identity-config")["data"]["config.yaml"]
    )
    assert config["identity"] == {"http_host": "0.0.0.0", "http_port": 8053}
    monitoring = by_name(objects, "ConfigMap", "danang-monitoring-config")["data"]["config.yaml"]
    assert "identity" not in yaml.safe_load(monitoring)
