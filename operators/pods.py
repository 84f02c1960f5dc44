"""What every workload the operator makes has in common: labels, the hardened security
context, images and the configuration hash that rolls pods when their configuration changes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from smartcity import __version__
from smartcity.operators.crds import GROUP
from smartcity.operators.model import Image, Resources, SecretKey

CONFIG_HASH = f"{GROUP}/config-hash"
MANAGED_BY = "smartcity-operator"
UID = 10001
"""The image's non-root user (see the Dockerfile)."""


def labels(instance: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "smartcity",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "smartcity",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": __version__,
    }


def selector(instance: str, component: str) -> dict[str, str]:
    """The labels a workload selects its pods by; never changed once created (a selector of
    a Deployment is immutable), so the version is not among them."""
    return {
        "app.kubernetes.io/name": "smartcity",
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
    }


def image(spec: Image) -> str:
    return f"{spec.repository}:{spec.tag or __version__}"


def config_hash(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(spec: Resources) -> dict[str, Any]:
    # The API server answers quantities as strings: written as strings, they compare equal.
    return {
        "requests": {name: str(value) for name, value in spec.requests.items()},
        "limits": {name: str(value) for name, value in spec.limits.items()},
    }


def secret_file(volume: str, ref: SecretKey, filename: str) -> dict[str, Any]:
    """A volume holding one key of a secret as ``filename``, readable by its owner only."""
    return {
        "name": volume,
        "secret": {
            "secretName": ref.name,
            "items": [{"key": ref.key, "path": filename}],
            "defaultMode": 0o400,
        },
    }


def writable_dirs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts for the only places a container writes (the root filesystem is
    read-only): its data folder and ``/tmp``."""
    volumes = [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    mounts = [
        {"name": "data", "mountPath": "/var/lib/smartcity"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    return volumes, mounts


def pull_secrets(spec: Image) -> list[dict[str, str]]:
    return [{"name": name} for name in spec.pull_secrets]
