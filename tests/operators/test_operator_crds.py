"""The CRDs: structural schemas the API server accepts, that refuse what a schema can say."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version
from typer.testing import CliRunner

from smartcity.cli.main import app
from smartcity.operators import crds

CITY = {
    "apiVersion": crds.API_VERSION,
    "kind": "SmartCity",
    "metadata": {"name": "danang", "namespace": "smartcity"},
    "spec": {
        "nats": {"url": "nats://nats:4222", "clusterSize": 3},
        "storage": {"secretRef": {"name": "smartcity-postgres", "key": "url"}},
        "services": {"monitoring": {"replicas": 3, "resources": {"requests": {"cpu": 1}}}},
    },
}
AGENT = {
    "apiVersion": crds.API_VERSION,
    "kind": "EdgeAgent",
    "metadata": {"name": "hoa-khanh", "namespace": "smartcity"},
    "spec": {
        "site": "hoa-khanh-110kv",
        "field": "electricity",
        "profilesConfigMap": {"name": "hoa-khanh-profiles"},
    },
}


def schema(kind: str) -> dict[str, Any]:
    (crd,) = [d for d in crds.definitions() if d["spec"]["names"]["kind"] == kind]
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


def test_the_crds_are_valid_for_a_current_kubernetes() -> None:
    for crd in crds.definitions():
        kubernetes_validate.validate(crd, latest_version(), strict=True)


@pytest.mark.parametrize("kind", ["SmartCity", "EdgeAgent"])
def test_the_schemas_are_structural(kind: str) -> None:
    for path, node in nodes(schema(kind)):
        assert node.get("type") or node.get("x-kubernetes-int-or-string"), path
        assert not {"$ref", "anyOf", "oneOf", "allOf", "$defs", "title"} & node.keys(), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties") is not False, path
        assert node.get("default", 0) is not None, path


def test_names_columns_and_subresources() -> None:
    city, agent, _ = crds.definitions()
    assert city["spec"]["names"]["shortNames"] == ["scity"]
    assert "city" in agent["spec"]["names"]["categories"]
    version = agent["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert "status" in city["spec"]["versions"][0]["subresources"]
    columns = [c["name"] for c in city["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[-2:] == ["Ready", "Age"]
    status = schema("SmartCity")["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions"} <= status.keys()


def test_defaults_come_from_the_spec_models() -> None:
    services = schema("SmartCity")["properties"]["spec"]["properties"]["services"]
    assert services["properties"]["console"]["default"]["enabled"] is False
    assert services["properties"]["monitoring"]["default"]["enabled"] is True
    agent = schema("EdgeAgent")["properties"]["spec"]
    assert agent["properties"]["replicas"]["default"] == 1
    assert agent["required"] == ["site", "field"]


def test_the_examples_are_accepted() -> None:
    jsonschema.validate(CITY, schema("SmartCity"))
    jsonschema.validate(AGENT, schema("EdgeAgent"))


@pytest.mark.parametrize(
    ("kind", "spec", "field"),
    [
        ("SmartCity", {"services": {"monitoring": {"replicas": -1}}}, "replicas"),
        ("SmartCity", {"auth": {"mode": "maybe"}}, "mode"),
        ("SmartCity", {"nats": {"url": "http://nats:4222"}}, "url"),
        ("SmartCity", {"nats": {"clusterSize": 9}}, "clusterSize"),
        ("SmartCity", {"storage": {"secretRef": {"name": "pg"}}}, "secretRef"),
        ("SmartCity", {"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ("EdgeAgent", {"site": "Hoa Khanh"}, "site"),
        ("EdgeAgent", {"replicas": 2}, "replicas"),
        ("EdgeAgent", {"placement": {"tolerations": [{"effect": "Sometimes"}]}}, "effect"),
    ],
)
def test_what_a_schema_can_say_is_refused_by_it(
    kind: str, spec: dict[str, Any], field: str
) -> None:
    example = CITY if kind == "SmartCity" else AGENT
    document = {**example, "spec": {**example["spec"], **spec}}
    with pytest.raises(jsonschema.ValidationError) as refused:
        jsonschema.validate(document, schema(kind))
    assert field in "/".join(str(part) for part in refused.value.absolute_path)


def test_the_command_prints_the_crds() -> None:
    done = CliRunner().invoke(app, ["operator", "crds"])
    assert done.exit_code == 0, done.output
    assert done.output == crds.render()
