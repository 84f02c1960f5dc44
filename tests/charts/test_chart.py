"""The Helm chart, with the real Helm engine (the helm-python-sdk wheel) and the Kubernetes
schemas of a current release (kubernetes-validate): it lints, renders with the default and the
production values, refuses bad values, and grants the operator exactly what it uses.

The NATS dependency cannot be downloaded here, so the chart is rendered with it disabled; the
one lint message about its missing archive is expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from smartcity.operators import crds, kube

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "smartcity"
PRODUCTION = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text("utf-8"))
DEFAULTS = {"nats": {"enabled": False}, "natsUrl": "nats://nats.messaging:4222"}
KUBERNETES = latest_version()
MISSING_DEPENDENCY = "chart directory is missing these dependencies: nats"


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm_python.Chart, values: dict[str, Any]) -> dict[str, str]:
    return chart.render(values, name="city", namespace="smartcity")


def documents(rendered: dict[str, str]) -> list[dict[str, Any]]:
    found = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            found.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return found


def custom_schema(kind: str) -> dict[str, Any]:
    (crd,) = [d for d in crds.definitions() if d["spec"]["names"]["kind"] == kind]
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def validate(document: dict[str, Any]) -> None:
    """Built-in kinds against Kubernetes' schemas, our kinds against our CRDs."""
    group = document["apiVersion"].rpartition("/")[0]
    if group in (crds.GROUP, "kopf.dev"):
        jsonschema.validate(document, custom_schema(document["kind"]))
    elif group == "monitoring.coreos.com":
        assert document["kind"] == "ServiceMonitor"
        assert document["spec"]["endpoints"][0]["port"] == "metrics"
    else:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_lint_is_clean() -> None:
    for values in (DEFAULTS, PRODUCTION):
        report = helm_python.lint(CHART, values, kube_version=f"v{KUBERNETES}.0")
        assert report["errors"] == []
        serious = [m for m in report["messages"] if m["severity"] >= 2]
        assert [m["error"] for m in serious] == [MISSING_DEPENDENCY]


@pytest.mark.parametrize("values", [DEFAULTS, PRODUCTION], ids=["defaults", "production"])
def test_every_rendered_manifest_is_valid(chart: helm_python.Chart, values: dict) -> None:
    rendered = documents(render(chart, values))
    kinds = {document["kind"] for document in rendered}
    assert {
        "Deployment",
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "SmartCity",
        "ClusterKopfPeering",
        "Pod",
    } <= kinds
    for document in rendered:
        validate(document)
        labels = document["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "smartcity"
        assert labels["app.kubernetes.io/instance"] == "city"


def test_the_crds_are_valid_and_the_ones_the_operator_serves(chart: helm_python.Chart) -> None:
    shipped = [doc for item in chart.crds for doc in yaml.safe_load_all(item["data"]) if doc]
    for crd in shipped:
        kubernetes_validate.validate(crd, KUBERNETES, strict=True)
    assert shipped == crds.definitions()
    assert (CHART / "crds" / "smartcity.yaml").read_text("utf-8") == crds.render()


def pods(rendered: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for document in rendered:
        if document["kind"] == "Deployment":
            yield document["metadata"]["name"], document["spec"]["template"]["spec"]
        elif document["kind"] == "Pod":
            yield document["metadata"]["name"], document["spec"]


@pytest.mark.parametrize("values", [DEFAULTS, PRODUCTION], ids=["defaults", "production"])
def test_every_pod_is_hardened_and_bounded(chart: helm_python.Chart, values: dict) -> None:
    found = list(pods(documents(render(chart, values))))
    assert len(found) == 2  # the operator and the helm test
    for name, pod in found:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name


def test_the_production_values_reach_the_operator_and_the_city(chart: helm_python.Chart) -> None:
    rendered = documents(render(chart, PRODUCTION))
    (operator,) = [d for d in rendered if d["kind"] == "Deployment"]
    command = operator["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--nats") + 1] == PRODUCTION["natsUrl"]
    assert command.count("--namespace") == 2
    assert command[command.index("--peering") + 1] == "city-smartcity"
    assert operator["spec"]["replicas"] == 3
    (city,) = [d for d in rendered if d["kind"] == "SmartCity"]
    assert city["spec"]["nats"]["url"] == PRODUCTION["natsUrl"]
    assert city["spec"]["services"]["monitoring"]["replicas"] == 4
    assert city["spec"]["image"]["repository"] == "registry.danang.vn/smartcity/smartcity"
    hooks = [d for d in rendered if d["kind"] == "Pod"]
    assert hooks[0]["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_notes_tell_the_next_kubectl_steps(chart: helm_python.Chart) -> None:
    notes = render(chart, DEFAULTS)["smartcity/templates/NOTES.txt"]
    assert "kubectl -n smartcity rollout status deployment/city-smartcity" in notes
    assert "kubectl -n smartcity create secret generic smartcity-postgres" in notes
    assert "get smartcity danang -w" in notes
    assert "helm test city" in notes


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"operator": {"replicas": 0}}, "/operator/replicas"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"natsUrl": "http://nats:4222"}, "/natsUrl"),
        ({"city": {"name": "Da Nang"}}, "/city/name"),
        ({"serviceMonitor": {"interval": "often"}}, "/serviceMonitor/interval"),
        ({"operatr": {}}, "operatr"),
    ],
)
def test_bad_values_are_refused(chart: helm_python.Chart, values: dict, where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as refused:
        chart.validate_schema(values)
    assert where in str(refused.value)


def granted(rendered: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    grants = set()
    for document in rendered:
        if document["kind"] in ("ClusterRole", "Role"):
            for rule in document["rules"]:
                assert "*" not in rule["verbs"]
                assert "*" not in rule["resources"]
                assert not rule.get("resourceNames")
                grants |= {
                    (group, resource, verb)
                    for group in rule["apiGroups"]
                    for resource in rule["resources"]
                    for verb in rule["verbs"]
                }
    return grants


def test_rbac_grants_no_more_than_the_operator_uses(chart: helm_python.Chart) -> None:
    used = {
        (group, resource, verb)
        for (group, resource), verbs in kube.permissions().items()
        for verb in verbs
    }
    for values in (DEFAULTS, PRODUCTION):
        grants = granted(documents(render(chart, values)))
        assert grants - used == set(), "granted but never used"
        assert used - grants == set(), "used but not granted"
