"""The status of an owner, computed from its Deployments and from what was wrong, if anything.

Three conditions, as Kubernetes' own workloads and CloudNativePG report them: ``Ready``
(every workload has its wanted replicas ready), ``Progressing`` (a rollout or a scale is under
way) and ``Degraded`` (the spec cannot be acted on, a referenced secret or ConfigMap is
missing, or a workload is failing). A condition's ``lastTransitionTime`` changes only when its
status does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"
PROBLEM_REASONS = frozenset({"InvalidSpec", "MissingReference"})
"""Degraded reasons that come from the spec, not from the workloads: they stand until the
next reconciliation says otherwise."""


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


@dataclass(frozen=True)
class Workload:
    component: str
    wanted: int
    ready: int
    updated: int
    failing: str | None = None

    @property
    def is_ready(self) -> bool:
        return self.ready >= self.wanted

    @property
    def is_settled(self) -> bool:
        return self.is_ready and self.updated >= self.wanted


def workload(deployment: dict[str, Any]) -> Workload:
    meta, spec = deployment.get("metadata", {}), deployment.get("spec", {})
    status = deployment.get("status") or {}
    failing = None
    for condition in status.get("conditions") or []:
        stuck = condition.get("type") == "Progressing" and condition.get("status") == "False"
        failed = condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
        if stuck or failed:
            failing = condition.get("message") or condition.get("reason") or condition["type"]
    labels = meta.get("labels") or {}
    return Workload(
        component=labels.get("app.kubernetes.io/component", meta.get("name", "")),
        wanted=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        failing=failing,
    )


def carried_problem(previous: list[dict[str, Any]]) -> Problem | None:
    """The spec problem the last reconciliation reported, if it did."""
    for condition in previous:
        if (
            condition.get("type") == DEGRADED
            and condition.get("status") == "True"
            and condition.get("reason") in PROBLEM_REASONS
        ):
            return Problem(condition["reason"], condition.get("message", ""))
    return None


def conditions(
    previous: list[dict[str, Any]],
    workloads: list[Workload],
    problem: Problem | None,
    generation: int | None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    unready = [w for w in workloads if not w.is_ready]
    unsettled = [w for w in workloads if not w.is_settled]
    failing = [w for w in workloads if w.failing]
    if problem is not None:
        degraded = ("True", problem.reason, problem.message)
    elif failing:
        text = "; ".join(f"{w.component}: {w.failing}" for w in failing)
        degraded = ("True", "WorkloadFailing", text)
    else:
        degraded = ("False", "AsExpected", "nothing is wrong")
    if unready:
        text = ", ".join(f"{w.component} {w.ready}/{w.wanted}" for w in unready)
        ready = ("False", "ReplicasNotReady", f"waiting for {text}")
    else:
        ready = ("True", "AllReplicasReady", f"{len(workloads)} workload(s) ready")
    if unsettled:
        text = ", ".join(w.component for w in unsettled)
        progressing = ("True", "RollingOut", f"rolling out {text}")
    else:
        progressing = ("False", "Settled", "every workload is up to date")
    before = {c.get("type"): c for c in previous}
    out = []
    for kind, (status, reason, message) in (
        (READY, ready),
        (PROGRESSING, progressing),
        (DEGRADED, degraded),
    ):
        old = before.get(kind, {})
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        condition = {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since or moment,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        out.append(condition)
    return out


def summary(workloads: list[Workload]) -> dict[str, Any]:
    ready = sum(1 for w in workloads if w.is_ready)
    return {
        "services": {w.component: f"{w.ready}/{w.wanted}" for w in workloads},
        "ready": f"{ready}/{len(workloads)}",
    }
