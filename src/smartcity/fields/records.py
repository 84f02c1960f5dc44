"""The record types a field declares: the schema of one record, who may read it, the
states a status may move through, and the one spelling of a place on the map.

The records service stores and checks the records themselves (services/records).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from smartcity.fields.checks import check_member, check_name, check_text, normalise
from smartcity.fields.enums import RecordAccess


@dataclass(frozen=True, slots=True)
class RecordWorkflow:
    """The states a record moves through: ``property`` (a top-level string property of the
    schema) starts at one of ``initial`` and may only change along ``transitions`` (state →
    the states it may move to). The records service enforces it on every update."""

    property: str
    initial: tuple[str, ...]
    transitions: Mapping[str, tuple[str, ...]] = field(hash=False)

    def __post_init__(self) -> None:
        what = f"workflow of {self.property!r}"
        normalise(self, "initial", tuple(self.initial))
        moves = {state: tuple(targets) for state, targets in dict(self.transitions).items()}
        states = set(moves) | {target for targets in moves.values() for target in targets}
        if not self.initial or not set(self.initial) <= states:
            raise ValueError(f"{what}: initial states must be states of its transitions")
        normalise(self, "transitions", MappingProxyType(moves))

    def allows(self, before: str, after: str) -> bool:
        return before == after or after in self.transitions.get(before, ())


GEO_POINT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["lat", "lon"],
    "properties": {
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
    },
}
"""The JSON Schema of a place on the map (WGS 84 degrees), for record types that have one:
one spelling, so that every type's location reads alike (the console draws them)."""


@dataclass(frozen=True, slots=True)
class RecordType:
    """A kind of record the records service stores for this field.

    ``schema`` is a JSON Schema (draft 2020-12) describing one record; its top level is an
    object. With ``access`` ``owner``, ``owner_property`` names the required string property
    holding the citizen's identity, which is what lets a citizen read their own records.
    The field that declares a record type owns it; names are unique across the platform
    because they are the ``<type>`` token of ``city.records.<type>.<event>``.

    ``version`` is raised whenever the schema changes; every stored record says the version
    it was written under. ``indexed`` names the dotted paths searches by value are indexed
    on; ``sensitive`` records (health data) are read only after a recent strong login with
    eID level 2, with a stated reason, and every read is audited; ``workflow`` constrains
    how a status property may change.
    """

    name: str
    title: str
    schema: Mapping[str, Any] = field(hash=False)
    access: RecordAccess = RecordAccess.FIELD
    owner_property: str | None = None
    version: int = 1
    description: str = ""
    indexed: tuple[str, ...] = ()
    sensitive: bool = False
    workflow: RecordWorkflow | None = None

    def __post_init__(self) -> None:
        name = check_name(self.name, "record type name")
        what = f"record type {name!r}"
        normalise(self, "title", check_text(self.title, f"{what}: title"))
        access = check_member(RecordAccess, self.access, f"{what}: access")
        normalise(self, "access", access)
        if not isinstance(self.schema, Mapping):
            raise TypeError(f"{what}: schema must be a mapping (a JSON Schema object)")
        schema = copy.deepcopy(dict(self.schema))
        if schema.get("type") != "object":
            raise ValueError(f'{what}: schema must describe an object ("type": "object")')
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            raise ValueError(f"{what}: schema must declare its properties")
        required = schema.get("required", [])
        if not isinstance(required, list) or any(key not in properties for key in required):
            raise ValueError(f"{what}: schema's required list names undeclared properties")
        normalise(self, "schema", MappingProxyType(schema))
        if access is RecordAccess.OWNER:
            owner = self.owner_property
            if owner is None:
                raise ValueError(f"{what}: access 'owner' needs owner_property")
            if owner not in properties or owner not in required:
                raise ValueError(
                    f"{what}: owner_property {owner!r} must be a required schema property"
                )
        elif self.owner_property is not None:
            raise ValueError(f"{what}: owner_property applies only to access 'owner'")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"{what}: version must be a whole number from 1")
        normalise(
            self,
            "description",
            check_text(self.description, f"{what}: description", required=False),
        )
        normalise(self, "indexed", tuple(self.indexed))
        for path in self.indexed:
            if not isinstance(path, str) or path.split(".")[0] not in properties:
                raise ValueError(f"{what}: indexed path {path!r} is not a schema property")
        workflow = self.workflow
        if workflow is not None and properties.get(workflow.property, {}).get("enum") is None:
            raise ValueError(f"{what}: workflow property {workflow.property!r} needs an enum")
        # Imported here: agents load this module too and never declare record types.
        from jsonschema import Draft202012Validator, SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"{what}: not a valid JSON Schema: {exc.message}") from None
