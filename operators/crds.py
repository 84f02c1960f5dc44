"""The CustomResourceDefinitions, built from the spec models.

The chart ships the output of :func:`definitions` in ``charts/smartcity/crds/`` (``smartcity
operator crds`` writes it; a test keeps the two equal). The schemas follow the conventions of
nats-io/nack, Strimzi and CloudNativePG: a status subresource with ``observedGeneration`` and
standard conditions, printer columns, short names and the ``city`` category, and a scale
subresource on ``EdgeAgent`` (0 pauses an agent).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from smartcity.operators.model import EdgeAgentSpec, SmartCitySpec

GROUP = "smartcity.danang.vn"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "city"

# Keys of JSON Schema that a Kubernetes structural schema keeps as they are.
_KEPT = {
    "type",
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "format",
}


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn pydantic's JSON Schema into a Kubernetes structural schema: references inlined,
    ``X | None`` as a nullable ``X``, free-form maps as preserved unknown fields, an
    integer-or-string as ``x-kubernetes-int-or-string``."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if {option.get("type") for option in options} == {"string", "integer"}:
            out = {"x-kubernetes-int-or-string": True}
        else:
            (only,) = options
            out = structural({**only, **rest}, defs)
        out.update({k: v for k, v in rest.items() if k == "description"})
        if nullable and rest.get("default") is None:
            out.pop("default", None)
            out["nullable"] = True
        return out
    out = {key: value for key, value in schema.items() if key in _KEPT}
    if "default" in out:
        out["default"] = _without_nulls(out["default"])
        if out["default"] is None:
            out.pop("default")
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if schema.get("type") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if properties:
            out["properties"] = {
                name: structural(value, defs) for name, value in properties.items()
            }
        elif isinstance(extra, dict) and extra:
            out["additionalProperties"] = structural(extra, defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    if schema.get("type") == "array":
        out["items"] = structural(schema.get("items", {"type": "object"}), defs)
    if not schema.get("type") and "x-kubernetes-int-or-string" not in out:
        out.update(type="object", **{"x-kubernetes-preserve-unknown-fields": True})
    return out


def _without_nulls(value: Any) -> Any:
    """A default as the API server should store it: unset fields left out, not null."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


class _Dumper(yaml.SafeDumper):
    """Writes repeated parts of a schema in full: anchors would only puzzle a reader."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _spec_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = structural(model.model_json_schema(by_alias=True))
    schema.pop("description", None)
    return schema


_CONDITION = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string", "description": "Ready, Progressing or Degraded"},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
        "observedGeneration": {"type": "integer"},
    },
}


def _status(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "type": "array",
                "items": _CONDITION,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            **extra,
        },
    }


def _condition_column(kind: str) -> dict[str, Any]:
    return {
        "name": kind,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{kind}")].status',
    }


def _crd(
    kind: str,
    plural: str,
    short: list[str],
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
    subresources: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "smartcity"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": [CATEGORY, "all"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                    "subresources": subresources,
                    "additionalPrinterColumns": [
                        *columns,
                        _condition_column("Ready"),
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def smartcity_crd() -> dict[str, Any]:
    status = _status(
        {
            "services": {
                "type": "object",
                "description": "per service: ready and wanted replicas",
                "additionalProperties": {"type": "string"},
            },
            "ready": {"type": "string", "description": "services ready, e.g. 3/4"},
        }
    )
    columns = [
        {"name": "Services", "type": "string", "jsonPath": ".status.ready"},
        {"name": "NATS", "type": "string", "jsonPath": ".spec.nats.url", "priority": 1},
    ]
    return _crd(
        "SmartCity",
        "smartcities",
        ["scity"],
        _spec_schema(SmartCitySpec),
        status,
        columns,
        {"status": {}},
    )


def edgeagent_crd() -> dict[str, Any]:
    status = _status(
        {
            "replicas": {"type": "integer"},
            "readyReplicas": {"type": "integer"},
            "selector": {"type": "string"},
            "devices": {"type": "array", "items": {"type": "string"}},
        }
    )
    columns = [
        {"name": "Site", "type": "string", "jsonPath": ".spec.site"},
        {"name": "Field", "type": "string", "jsonPath": ".spec.field"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Devices", "type": "string", "jsonPath": ".status.devices", "priority": 1},
    ]
    scale = {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    return _crd(
        "EdgeAgent",
        "edgeagents",
        ["ea"],
        _spec_schema(EdgeAgentSpec),
        status,
        columns,
        {"status": {}, "scale": scale},
    )


def peering_crd() -> dict[str, Any]:
    """kopf's own ClusterKopfPeering: where the operator's replicas see each other, so that
    one works and the others stand by. Its name and group are kopf's, not ours."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
        "spec": {
            "group": "kopf.dev",
            "scope": "Cluster",
            "names": {
                "kind": "ClusterKopfPeering",
                "plural": "clusterkopfpeerings",
                "singular": "clusterkopfpeering",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def definitions() -> list[dict[str, Any]]:
    return [smartcity_crd(), edgeagent_crd(), peering_crd()]


def render() -> str:
    """The CRDs as one YAML stream, as the chart ships them."""
    header = "# Generated by `smartcity operator crds`; edit smartcity.operators.model instead.\n"
    return header + yaml.dump_all(definitions(), Dumper=_Dumper, sort_keys=False, width=100)
