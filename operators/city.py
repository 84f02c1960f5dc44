"""The children of a ``SmartCity``, built from its spec: plain functions, no API server.

For each enabled service: a ConfigMap with its configuration file, a Deployment (gRPC health
probes, the configuration hash on the pod template), a Service for its gRPC port, a
NetworkPolicy and, from two replicas on, a PodDisruptionBudget. For the city: the Job that
runs ``smartcity streams ensure`` with the stream replicas the NATS cluster supports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from smartcity.operators import pods
from smartcity.operators.crds import GROUP
from smartcity.operators.model import SmartCitySpec, SpecError
from smartcity.operators.services import GRPC_PORT, METRICS_PORT, SERVICES, ServiceKind
from smartcity.runtime.config import Settings, StreamsSettings

CONFIG_DIR = "/etc/smartcity"
NATS_CREDENTIALS = f"{CONFIG_DIR}/nats/credentials"
MAX_STREAM_REPLICAS = 3
"""JetStream keeps at most this many copies of a stream worth having (R3 is NATS' advice)."""
CLIENTS_LABEL = f"{GROUP}/clients"
MAX_NAME = 63
"""Longest name of a Service (a DNS label), and so of every child."""
STREAMS_COMMAND = ["smartcity", "streams", "ensure", "--config", f"{CONFIG_DIR}/config.yaml"]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def stream_replicas(spec: SmartCitySpec) -> int:
    return min(spec.nats.cluster_size, MAX_STREAM_REPLICAS)


def settings_for(
    spec: SmartCitySpec, component: str, nats_url: str, own: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The configuration file of one component: the defaults of the streams' limits, the
    user's ``spec.config`` over them, then what the operator owns (where NATS is, where
    to listen, how many stream replicas) over both."""
    streams = StreamsSettings().model_dump(mode="json")
    replicas = stream_replicas(spec)
    owned: dict[str, Any] = {
        "nats": {
            "url": nats_url,
            "embedded": False,
            "streams": {name: {"replicas": replicas} for name in streams},
        },
        "grpc": {"host": "0.0.0.0", "port": GRPC_PORT},
        "auth": {"mode": spec.auth.mode},
        "logging": {"level": spec.logging.level, "format": spec.logging.format},
        "data_dir": "/var/lib/smartcity",
    }
    if spec.nats.credentials_secret is not None:
        owned["nats"]["credentials_file"] = NATS_CREDENTIALS
    # Metrics are always there for Prometheus to scrape; traces go out when a collector is named.
    owned["telemetry"] = {
        "service_name": f"smartcity-{component}",
        "prometheus_host": "0.0.0.0",
        "prometheus_port": METRICS_PORT,
    }
    if spec.telemetry.otlp_endpoint:
        owned["telemetry"].update(exporter="otlp", otlp_endpoint=spec.telemetry.otlp_endpoint)
    owned = _merge(dict(own or {}), owned)
    values = _merge(_merge({"nats": {"streams": streams}}, spec.config), owned)
    try:
        Settings.model_validate(values)
    except ValidationError as exc:
        raise SpecError(
            [
                "spec.config."
                + ".".join(str(part) for part in item["loc"])
                + ": "
                + ("unknown key" if item["type"] == "extra_forbidden" else item["msg"])
                for item in exc.errors()
            ]
        ) from None
    return values


def check(name: str, spec: SmartCitySpec, nats_url: str | None) -> str:
    """What no schema can say; returns the NATS URL to use."""
    problems = []
    url = spec.nats.url or nats_url
    if not url:
        problems.append("spec.nats.url: not set, and the operator knows no NATS of the chart's")
    longest = max(len(f"{name}-{kind}-config") for kind in [*SERVICES, "streams"])
    if longest > MAX_NAME:
        problems.append(
            f"metadata.name: {name!r} is too long: its children's names would pass {MAX_NAME} "
            "characters"
        )
    for kind in SERVICES.values():
        service = spec.service(kind.name)
        if service.enabled and service.replicas > 1 and kind.stores and not spec.storage.secret_ref:
            problems.append(
                f"spec.services.{kind.name}.replicas: {service.replicas} replicas need "
                "spec.storage.secretRef (without it each pod keeps its own SQLite file)"
            )
    if problems:
        raise SpecError(problems)
    assert url is not None
    return url


def children(name: str, namespace: str, spec: SmartCitySpec, nats_url: str | None) -> list[dict]:
    """Every object the city should have, in the order to create them."""
    url = check(name, spec, nats_url)
    out = [*streams_job(name, namespace, spec, url)]
    for kind in SERVICES.values():
        if spec.service(kind.name).enabled:
            out.extend(service_objects(name, namespace, spec, kind, url))
    return out


def _object(kind: str, api: str, name: str, namespace: str, labels: dict[str, str]) -> dict:
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
    }


def _config_map(name: str, namespace: str, labels: dict[str, str], values: dict) -> dict:
    text = yaml.safe_dump(values, sort_keys=True)
    return {**_object("ConfigMap", "v1", name, namespace, labels), "data": {"config.yaml": text}}


def service_objects(
    city: str, namespace: str, spec: SmartCitySpec, kind: ServiceKind, nats_url: str
) -> list[dict[str, Any]]:
    name = f"{city}-{kind.name}"
    labels = pods.labels(city, kind.name)
    selector = pods.selector(city, kind.name)
    service = spec.service(kind.name)
    config = _config_map(
        f"{name}-config", namespace, labels, settings_for(spec, kind.name, nats_url, kind.settings)
    )
    ports = [("grpc", GRPC_PORT), ("metrics", METRICS_PORT), *kind.ports]
    objects = [
        config,
        _deployment(name, namespace, labels, spec, kind, config),
        {
            **_object("Service", "v1", name, namespace, labels),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {"name": port, "port": number, "targetPort": port, "protocol": "TCP"}
                    for port, number in ports
                ],
            },
        },
        {
            **_object("NetworkPolicy", "networking.k8s.io/v1", name, namespace, labels),
            "spec": {
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"podSelector": {}},
                            {"namespaceSelector": {"matchLabels": {CLIENTS_LABEL: "true"}}},
                        ],
                        "ports": [
                            {"port": number, "protocol": "TCP"}
                            for port, number in ports
                            if port != "metrics"
                        ],
                    },
                    # Prometheus scrapes from its own namespace, wherever that is.
                    {
                        "from": [{"namespaceSelector": {}}],
                        "ports": [{"port": METRICS_PORT, "protocol": "TCP"}],
                    },
                ],
            },
        },
    ]
    if service.replicas >= 2:
        objects.append(
            {
                **_object("PodDisruptionBudget", "policy/v1", name, namespace, labels),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
            }
        )
    return objects


def _deployment(
    name: str,
    namespace: str,
    labels: dict[str, str],
    spec: SmartCitySpec,
    kind: ServiceKind,
    config: dict[str, Any],
) -> dict[str, Any]:
    service = spec.service(kind.name)
    volumes, mounts = pods.writable_dirs()
    volumes.append({"name": "config", "configMap": {"name": config["metadata"]["name"]}})
    mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
    env = []
    if kind.store_setting and spec.storage.secret_ref is not None:
        ref = spec.storage.secret_ref
        variable = "SMARTCITY_" + kind.store_setting.upper().replace(".", "__")
        secret = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
        env.append({"name": variable, "valueFrom": secret})
    if spec.nats.credentials_secret is not None:
        volumes.append(pods.secret_file("nats", spec.nats.credentials_secret, "credentials"))
        mounts.append({"name": "nats", "mountPath": f"{CONFIG_DIR}/nats", "readOnly": True})
    probe = {"grpc": {"port": GRPC_PORT}, "periodSeconds": 10, "timeoutSeconds": 5}
    selector = pods.selector(labels["app.kubernetes.io/instance"], kind.name)
    digest = pods.config_hash(config["data"], spec.storage.model_dump(), spec.nats.model_dump())
    return {
        **_object("Deployment", "apps/v1", name, namespace, labels),
        "spec": {
            "replicas": service.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels, "annotations": {pods.CONFIG_HASH: digest}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pods.pod_security(),
                    "imagePullSecrets": pods.pull_secrets(spec.image),
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector},
                        }
                    ],
                    "containers": [
                        {
                            "name": kind.name,
                            "image": pods.image(spec.image),
                            "imagePullPolicy": spec.image.pull_policy,
                            "command": kind.command,
                            "ports": [
                                {"name": port, "containerPort": number, "protocol": "TCP"}
                                for port, number in (
                                    ("grpc", GRPC_PORT),
                                    ("metrics", METRICS_PORT),
                                    *kind.ports,
                                )
                            ],
                            "env": env,
                            "readinessProbe": {**probe, "failureThreshold": 3},
                            "livenessProbe": {
                                **probe,
                                "initialDelaySeconds": 15,
                                "failureThreshold": 6,
                            },
                            "resources": pods.resources(service.resources),
                            "securityContext": pods.container_security(),
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }


def streams_job(
    city: str, namespace: str, spec: SmartCitySpec, nats_url: str
) -> list[dict[str, Any]]:
    """A ConfigMap and a Job that run ``smartcity streams ensure`` once per configuration:
    the Job's name carries the configuration hash, since a Job's pod template is immutable."""
    labels = pods.labels(city, "streams")
    config = _config_map(
        f"{city}-streams-config", namespace, labels, settings_for(spec, "streams", nats_url)
    )
    digest = pods.config_hash(config["data"], spec.nats.model_dump())
    volumes, mounts = pods.writable_dirs()
    volumes.append({"name": "config", "configMap": {"name": config["metadata"]["name"]}})
    mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
    if spec.nats.credentials_secret is not None:
        volumes.append(pods.secret_file("nats", spec.nats.credentials_secret, "credentials"))
        mounts.append({"name": "nats", "mountPath": f"{CONFIG_DIR}/nats", "readOnly": True})
    job = {
        **_object("Job", "batch/v1", f"{city}-streams-{digest[:8]}", namespace, labels),
        "spec": {
            "backoffLimit": 10,
            "activeDeadlineSeconds": 900,
            "template": {
                "metadata": {"labels": labels, "annotations": {pods.CONFIG_HASH: digest}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "automountServiceAccountToken": False,
                    "securityContext": pods.pod_security(),
                    "imagePullSecrets": pods.pull_secrets(spec.image),
                    "containers": [
                        {
                            "name": "streams",
                            "image": pods.image(spec.image),
                            "imagePullPolicy": spec.image.pull_policy,
                            "command": STREAMS_COMMAND,
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": pods.container_security(),
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }
    return [config, job]
