"""The children of an ``EdgeAgent``, built from its spec: plain functions, no API server.

The device profiles (inline, or every key of a ConfigMap) are checked with the agents' own
profile parser before anything is made, so that a profile the agent would refuse at start
becomes a ``Degraded`` condition naming the profile and the mistake, and the agent already
running keeps running with the profiles it has.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from smartcity.agents.profile import ProfileError, parse_profile
from smartcity.operators import pods
from smartcity.operators.model import EdgeAgentSpec, SpecError

CONFIG_DIR = "/etc/smartcity"
MAX_NAME = 63
"""The name is also a label value, which Kubernetes keeps to 63 characters."""


def agent_id(name: str) -> str:
    """The agent's id on NATS and in its buffer: the resource's name as a subject token."""
    return re.sub(r"[^a-z0-9_-]", "-", name.lower())[:63]


def _documents(
    spec: EdgeAgentSpec, config_map: Mapping[str, str] | None
) -> Iterable[tuple[str, Any]]:
    if spec.profiles:
        for index, profile in enumerate(spec.profiles):
            yield f"spec.profiles[{index}]", profile
        return
    assert spec.profiles_config_map is not None
    where = f"configmap/{spec.profiles_config_map.name}"
    if not config_map:
        raise SpecError([f"spec.profilesConfigMap: {where} holds no profile"])
    for key, text in sorted(config_map.items()):
        try:
            yield f"{where} key {key}", yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "not YAML"
            raise SpecError([f"{where} key {key}:{line} invalid YAML: {problem}"]) from None


def profiles(
    spec: EdgeAgentSpec,
    config_map: Mapping[str, str] | None = None,
    known_fields: Iterable[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The validated profiles by device id, or :class:`SpecError` with every problem."""
    problems: list[str] = []
    found: dict[str, dict[str, Any]] = {}
    for source, document in _documents(spec, config_map):
        try:
            device = parse_profile(document, source, known_fields=known_fields)
        except ProfileError as exc:
            problems.extend(f"{source}: {problem}" for problem in exc.problems)
            continue
        if device.site != spec.site:
            problems.append(f"{source}: site {device.site!r} is not the agent's ({spec.site!r})")
        if device.field != spec.field:
            problems.append(f"{source}: field {device.field!r} is not the agent's ({spec.field!r})")
        if device.device in found:
            problems.append(f"{source}: device {device.device!r} is given twice")
        found[device.device] = document
    if problems:
        raise SpecError(problems)
    return found


def children(
    name: str,
    namespace: str,
    spec: EdgeAgentSpec,
    devices: Mapping[str, dict[str, Any]],
    nats_url: str | None,
) -> list[dict[str, Any]]:
    """The profile ConfigMap and the agent's Deployment."""
    problems = []
    url = spec.nats.url or nats_url
    if not url:
        problems.append("spec.nats.url: not set, and the operator knows no NATS of the chart's")
    if len(f"{name}-agent") > MAX_NAME:
        problems.append(f"metadata.name: {name!r} is too long: at most {MAX_NAME - 6} characters")
    if problems:
        raise SpecError(problems)
    labels = pods.labels(name, "edge-agent")
    labels.update({"smartcity.danang.vn/site": spec.site, "smartcity.danang.vn/field": spec.field})
    settings: dict[str, Any] = {
        "nats": {"url": url, "embedded": False},
        "agent": {"id": agent_id(name), "buffer_dir": "/var/lib/smartcity/buffer"},
        "logging": {"level": spec.logging.level, "format": spec.logging.format},
        "data_dir": "/var/lib/smartcity",
    }
    if spec.nats.credentials_secret is not None:
        settings["nats"]["credentials_file"] = f"{CONFIG_DIR}/nats/credentials"
    data = {"config.yaml": yaml.safe_dump(settings, sort_keys=True)}
    for device, profile in sorted(devices.items()):
        data[f"profile-{device}.yaml"] = yaml.safe_dump(profile, sort_keys=False)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-agent", "namespace": namespace, "labels": labels},
        "data": data,
    }
    return [config_map, _deployment(name, namespace, labels, spec, config_map)]


def _deployment(
    name: str,
    namespace: str,
    labels: dict[str, str],
    spec: EdgeAgentSpec,
    config_map: dict[str, Any],
) -> dict[str, Any]:
    data = config_map["data"]
    command = ["smartcity", "agent", "--config", f"{CONFIG_DIR}/agent/config.yaml"]
    for key in sorted(data):
        if key.startswith("profile-"):
            command += ["--profile", f"{CONFIG_DIR}/agent/{key}"]
    volumes: list[dict[str, Any]] = [
        {"name": "agent", "configMap": {"name": config_map["metadata"]["name"]}},
        {"name": "tmp", "emptyDir": {}},
        (
            {"name": "data", "persistentVolumeClaim": {"claimName": spec.buffer.claim_name}}
            if spec.buffer.claim_name
            else {"name": "data", "emptyDir": {"sizeLimit": spec.buffer.size_limit}}
        ),
    ]
    mounts = [
        {"name": "agent", "mountPath": f"{CONFIG_DIR}/agent", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "data", "mountPath": "/var/lib/smartcity"},
    ]
    if spec.certificates_secret:
        volumes.append(
            {
                "name": "certs",
                "secret": {"secretName": spec.certificates_secret, "defaultMode": 0o400},
            }
        )
        mounts.append({"name": "certs", "mountPath": f"{CONFIG_DIR}/certs", "readOnly": True})
    if spec.nats.credentials_secret is not None:
        volumes.append(pods.secret_file("nats", spec.nats.credentials_secret, "credentials"))
        mounts.append({"name": "nats", "mountPath": f"{CONFIG_DIR}/nats", "readOnly": True})
    selector = pods.selector(name, "edge-agent")
    tolerations = [
        toleration.model_dump(by_alias=True, exclude_none=True)
        for toleration in spec.placement.tolerations
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{name}-agent", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": spec.replicas,
            # One writer per disk buffer: the old pod stops before the new one starts.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        pods.CONFIG_HASH: pods.config_hash(data, spec.nats.model_dump())
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pods.pod_security(),
                    "imagePullSecrets": pods.pull_secrets(spec.image),
                    "nodeSelector": dict(spec.placement.node_selector),
                    "tolerations": tolerations,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "agent",
                            "image": pods.image(spec.image),
                            "imagePullPolicy": spec.image.pull_policy,
                            "command": command,
                            "resources": pods.resources(spec.resources),
                            "securityContext": pods.container_security(),
                            "volumeMounts": mounts,
                        }
                    ],
                    "volumes": volumes,
                },
            },
        },
    }
