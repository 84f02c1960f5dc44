"""Bring the cluster to what an owner's spec says, and say how it went.

The order matters for the promise that an invalid spec never harms what runs: the spec is
parsed and its references (secrets, the profile ConfigMap) are checked before anything is
written, so a failure at any of these steps leaves every child as it was. Writing is
idempotent: an object that already says what it should is not touched, so running this
twice in a row changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from smartcity.operators import city, edge, pods, status
from smartcity.operators.kube import OWNED, Cluster
from smartcity.operators.model import (
    SecretKey,
    SpecError,
    parse_edgeagent,
    parse_smartcity,
)
from smartcity.runtime.errors import FailedPrecondition


@dataclass
class Outcome:
    """What one reconciliation did, and the status to write."""

    changes: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    retry: FailedPrecondition | None = None
    workloads: list[status.Workload] = field(default_factory=list)


def differs(desired: Any, actual: Any) -> bool:
    """Whether ``actual`` lacks anything ``desired`` says (what the server adds is ignored)."""
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return bool(desired) or actual is not None
        return any(differs(value, actual.get(key)) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list):
            return bool(desired) or actual is not None
        return len(desired) != len(actual) or any(map(differs, desired, actual))
    return bool(desired != actual)


async def apply(cluster: Cluster, manifests: list[dict[str, Any]]) -> list[str]:
    changes = []
    for manifest in manifests:
        kind, meta = manifest["kind"], manifest["metadata"]
        actual = await cluster.get(kind, meta["namespace"], meta["name"])
        if actual is None:
            await cluster.create(manifest)
            changes.append(f"created {kind} {meta['name']}")
        elif differs(manifest, actual):
            await cluster.patch(manifest)
            changes.append(f"updated {kind} {meta['name']}")
    return changes


async def prune(
    cluster: Cluster, namespace: str, owner_uid: str, keep: list[dict[str, Any]]
) -> list[str]:
    """Delete what the owner owns but no longer wants (a service switched off)."""
    wanted = {(m["kind"], m["metadata"]["name"]) for m in keep}
    changes = []
    for kind in OWNED:
        for item in await cluster.owned(kind, namespace, owner_uid):
            name = item["metadata"]["name"]
            if (kind, name) not in wanted:
                await cluster.delete(kind, namespace, name)
                changes.append(f"deleted {kind} {name}")
    return changes


async def remove(cluster: Cluster, namespace: str, owner_uid: str) -> list[str]:
    """Delete every child: garbage collection would, but not before the owner is gone."""
    return await prune(cluster, namespace, owner_uid, [])


async def _secret_problems(
    cluster: Cluster, namespace: str, refs: Mapping[str, SecretKey | None]
) -> list[str]:
    problems = []
    for where, ref in refs.items():
        if ref is None:
            continue
        secret = await cluster.get("Secret", namespace, ref.name)
        if secret is None:
            problems.append(f"{where}: secret {ref.name!r} not found in {namespace}")
        elif ref.key not in (secret.get("data") or {}) | (secret.get("stringData") or {}):
            problems.append(f"{where}: secret {ref.name!r} has no key {ref.key!r}")
    return problems


async def _finish(
    cluster: Cluster,
    body: Mapping[str, Any],
    desired: list[dict[str, Any]] | None,
    problem: status.Problem | None,
    outcome: Outcome,
) -> Outcome:
    meta = body["metadata"]
    namespace, uid = meta["namespace"], meta["uid"]
    if desired is not None:
        kopf.adopt(desired, owner=dict(body))
        outcome.changes += await apply(cluster, desired)
        outcome.changes += await prune(cluster, namespace, uid, desired)
    deployments = await cluster.owned("Deployment", namespace, uid)
    workloads = outcome.workloads = [status.workload(d) for d in deployments]
    previous = (body.get("status") or {}).get("conditions") or []
    outcome.status.update(
        conditions=status.conditions(previous, workloads, problem, meta.get("generation")),
        observedGeneration=meta.get("generation"),
    )
    return outcome


async def reconcile_city(
    cluster: Cluster, body: Mapping[str, Any], nats_url: str | None
) -> Outcome:
    meta = body["metadata"]
    outcome = Outcome()
    try:
        spec = parse_smartcity(body.get("spec"))
        desired = city.children(meta["name"], meta["namespace"], spec, nats_url)
        missing = await _secret_problems(
            cluster,
            meta["namespace"],
            {
                "spec.storage.secretRef": spec.storage.secret_ref,
                "spec.nats.credentialsSecret": spec.nats.credentials_secret,
            },
        )
    except SpecError as exc:
        return await _finish(cluster, body, None, status.Problem("InvalidSpec", str(exc)), outcome)
    if missing:
        outcome.retry = FailedPrecondition("; ".join(missing))
        problem = status.Problem("MissingReference", outcome.retry.message)
        return await _finish(cluster, body, None, problem, outcome)
    outcome = await _finish(cluster, body, desired, None, outcome)
    outcome.status.update(status.summary(outcome.workloads))
    return outcome


async def reconcile_agent(
    cluster: Cluster,
    body: Mapping[str, Any],
    nats_url: str | None,
    known_fields: list[str] | None = None,
) -> Outcome:
    meta = body["metadata"]
    namespace = meta["namespace"]
    outcome = Outcome()
    try:
        spec = parse_edgeagent(body.get("spec"))
        data = None
        missing = await _secret_problems(
            cluster, namespace, {"spec.nats.credentialsSecret": spec.nats.credentials_secret}
        )
        if spec.profiles_config_map is not None:
            ref = spec.profiles_config_map.name
            found = await cluster.get("ConfigMap", namespace, ref)
            if found is None:
                missing.append(f"spec.profilesConfigMap: configmap {ref!r} not found")
            else:
                data = found.get("data") or {}
        if spec.certificates_secret and not await cluster.get(
            "Secret", namespace, spec.certificates_secret
        ):
            missing.append(
                f"spec.certificatesSecret: secret {spec.certificates_secret!r} not found"
            )
        if missing:
            outcome.retry = FailedPrecondition("; ".join(missing))
            problem = status.Problem("MissingReference", outcome.retry.message)
            return await _finish(cluster, body, None, problem, outcome)
        devices = edge.profiles(spec, data, known_fields)
        desired = edge.children(meta["name"], namespace, spec, devices, nats_url)
    except SpecError as exc:
        return await _finish(cluster, body, None, status.Problem("InvalidSpec", str(exc)), outcome)
    outcome = await _finish(cluster, body, desired, None, outcome)
    outcome.status.update(agent_status(meta["name"], outcome.workloads, sorted(devices)))
    return outcome


def agent_status(
    name: str, workloads: list[status.Workload], devices: list[str] | None = None
) -> dict[str, Any]:
    """The fields ``kubectl scale`` and the printer columns read."""
    selector = ",".join(f"{k}={v}" for k, v in pods.selector(name, "edge-agent").items())
    out: dict[str, Any] = {
        "replicas": sum(w.wanted for w in workloads),
        "readyReplicas": sum(w.ready for w in workloads),
        "selector": selector,
    }
    if devices is not None:
        out["devices"] = devices
    return out
