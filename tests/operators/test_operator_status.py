"""Conditions computed from the children: what each says, and when it last changed."""

from __future__ import annotations

from datetime import UTC, datetime

from smartcity.operators import status

EARLY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
LATE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def deployment(wanted: int, ready: int, updated: int, **condition: str) -> dict:
    return {
        "metadata": {"name": "danang-monitoring", "labels": {"app.kubernetes.io/component": "x"}},
        "spec": {"replicas": wanted},
        "status": {
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "conditions": [condition] if condition else [],
        },
    }


def by_type(conditions: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conditions}


def test_ready_progressing_degraded_follow_the_workloads() -> None:
    rolling = [status.workload(deployment(2, 1, 1))]
    found = by_type(status.conditions([], rolling, None, 3, EARLY))
    assert found["Ready"]["status"] == "False"
    assert "x 1/2" in found["Ready"]["message"]
    assert found["Progressing"]["status"] == "True"
    assert found["Degraded"]["status"] == "False"
    assert found["Ready"]["observedGeneration"] == 3

    settled = [status.workload(deployment(2, 2, 2))]
    found = by_type(status.conditions([], settled, None, 3, EARLY))
    assert (found["Ready"]["status"], found["Progressing"]["status"]) == ("True", "False")


def test_a_failing_workload_or_a_problem_is_degraded() -> None:
    stuck = deployment(
        2, 0, 2, type="Progressing", status="False", message="ProgressDeadlineExceeded"
    )
    found = by_type(status.conditions([], [status.workload(stuck)], None, 1, EARLY))
    assert (found["Degraded"]["reason"], found["Degraded"]["status"]) == ("WorkloadFailing", "True")
    assert "ProgressDeadlineExceeded" in found["Degraded"]["message"]
    problem = status.Problem("InvalidSpec", "spec.nats.url: bad")
    found = status.conditions([], [], problem, 1, EARLY)
    assert status.carried_problem(found) == problem


def test_transition_times_change_only_with_the_status() -> None:
    workloads = [status.workload(deployment(1, 0, 0))]
    first = status.conditions([], workloads, None, 1, EARLY)
    same = status.conditions(first, workloads, None, 1, LATE)
    assert by_type(same)["Ready"]["lastTransitionTime"] == "2026-11-30T08:00:00Z"
    ready = status.conditions(first, [status.workload(deployment(1, 1, 1))], None, 1, LATE)
    assert by_type(ready)["Ready"]["lastTransitionTime"] == "2026-11-30T09:00:00Z"
    assert by_type(ready)["Degraded"]["lastTransitionTime"] == "2026-11-30T08:00:00Z"
