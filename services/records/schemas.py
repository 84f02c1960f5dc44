"""Record types and the checks every document passes before anything is written.

A document is refused, naming each offending place by its JSON Pointer
(``/patient/birth_date: not a date``), when it is too large, nested too deep, holds a number
that is not finite, or does not satisfy its type's JSON Schema (draft 2020-12, formats
checked). :class:`SchemaViolation` carries the violations; the gRPC layer sends them as
``google.rpc.BadRequest`` field violations.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from smartcity.fields import FieldHost, RecordType
from smartcity.runtime.errors import InvalidArgument

MAX_VIOLATIONS = 20
"""Violations reported per document: enough to fix a form, not a flood for a garbage one."""
SAFE_INTEGER = 2**53


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    """JSON Pointer into the document, ``""`` for the document itself."""
    message: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


class SchemaViolation(InvalidArgument):
    """A document that its type refuses; ``violations`` say where and why."""

    def __init__(self, violations: Sequence[Violation], *, prefix: str = "") -> None:
        shown = "; ".join(str(item) for item in violations[:5])
        more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
        super().__init__(f"{prefix}{shown}{more}")
        self.violations = list(violations)


@dataclass(frozen=True, slots=True)
class Limits:
    """What a document may be at most, checked before its schema."""

    max_bytes: int = 256 * 1024
    max_depth: int = 16


def pointer(parts: Iterable[Any]) -> str:
    """A JSON Pointer (RFC 6901) from path parts."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


class _Refer(Exception):  # noqa: N818 - a signal, not an error
    """The fast walk met something it leaves to the careful one."""


def _plain(value: Any, depth: int) -> Any:
    """:func:`canonical` of the JSON a parser or a form produces, without tracking the path:
    exact built-in types only, and :class:`_Refer` on anything else or anything wrong, so that
    the careful walk can name the place. ``depth`` is how many levels may still nest."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -SAFE_INTEGER <= value <= SAFE_INTEGER:
            return value
        raise _Refer
    if kind is float:
        if value - value != 0.0:  # inf - inf and nan - nan are nan
            raise _Refer
        if value.is_integer() and -SAFE_INTEGER <= value <= SAFE_INTEGER:
            return int(value)
        return value
    if kind is dict:
        if depth == 0 and value:
            raise _Refer
        result = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _Refer
            # Text, the most common value, is taken without a call.
            result[key] = item if type(item) is str else _plain(item, depth - 1)
        return result
    if kind is list or kind is tuple:
        if depth == 0 and value:
            raise _Refer
        return [item if type(item) is str else _plain(item, depth - 1) for item in value]
    raise _Refer


def canonical(value: Any, limits: Limits) -> Any:
    """``value`` as plain JSON with whole numbers as ``int``; a non-finite number, a key that
    is not text, a value of another type or nesting deeper than ``limits.max_depth`` is a
    :class:`SchemaViolation` naming its place."""
    if limits.max_depth >= 0:
        try:
            return _plain(value, limits.max_depth)
        except _Refer:
            pass  # a mapping or number of another type, or a refusal to explain
    return _careful(value, limits, ())


def _careful(value: Any, limits: Limits, path: tuple[Any, ...]) -> Any:
    """:func:`canonical` for any input, tracking where it is to name the place it refuses."""
    if len(path) > limits.max_depth:
        raise SchemaViolation(
            [Violation(pointer(path), f"nested deeper than {limits.max_depth} levels")]
        )
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > SAFE_INTEGER:
            raise SchemaViolation([Violation(pointer(path), "integer too large (beyond 2^53)")])
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SchemaViolation([Violation(pointer(path), "not a finite number")])
        if value.is_integer() and abs(value) <= SAFE_INTEGER:
            return int(value)
        return value
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemaViolation([Violation(pointer(path), "object keys must be text")])
            result[key] = _careful(item, limits, (*path, key))
        return result
    if isinstance(value, list | tuple):
        return [_careful(item, limits, (*path, index)) for index, item in enumerate(value)]
    raise SchemaViolation([Violation(pointer(path), f"not a JSON value ({type(value).__name__})")])


def encode(data: Mapping[str, Any]) -> str:
    """The one text form of a canonical document: what is stored and compared."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


_ARTICLE = {"object": "an", "array": "an", "integer": "an"}


def _violations(error: ValidationError) -> list[Violation]:
    """Readable violations of one jsonschema error; the instance itself is never quoted
    (it may be large, or personal data that has no place in logs)."""
    where = list(error.absolute_path)
    instance = error.instance
    rule = error.validator
    if rule == "required" and isinstance(instance, Mapping):
        missing = [name for name in error.validator_value if name not in instance]
        return [Violation(pointer([*where, name]), "required") for name in missing]
    if rule == "additionalProperties" and isinstance(instance, Mapping):
        declared = error.schema.get("properties", {})
        extra = [name for name in instance if name not in declared]
        return [Violation(pointer([*where, name]), "not allowed") for name in extra]
    if rule == "format":
        return [Violation(pointer(where), f"not a {error.validator_value}")]
    if rule == "type":
        kinds = error.validator_value
        names = kinds if isinstance(kinds, list) else [kinds]
        text = " or ".join(f"{_ARTICLE.get(name, 'a')} {name}" for name in names)
        return [Violation(pointer(where), f"not {text}")]
    if rule in ("enum", "const"):
        allowed = error.validator_value if rule == "enum" else [error.validator_value]
        shown = ", ".join(json.dumps(item, ensure_ascii=False) for item in allowed[:12])
        return [Violation(pointer(where), f"not one of {shown}")]
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return [Violation(pointer(where), f"violates {rule} {error.validator_value}")]
    if rule in ("minLength", "maxLength", "minItems", "maxItems", "pattern"):
        return [Violation(pointer(where), f"violates {rule} {error.validator_value!r}")]
    return [Violation(pointer(where), f"violates {rule}")]


# Keywords whose meaning is the same in draft-07 and draft 2020-12 (and in fastjsonschema
# and jsonschema): a schema made of these alone is also checked by fastjsonschema's compiled
# code, some twenty times faster, which is what a bulk import of a sector database spends
# its time on. jsonschema stays the reference: it alone reports violations, and a document
# fastjsonschema refuses is accepted if jsonschema finds nothing wrong.
_PORTABLE = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "enum", "const", "pattern",
        "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
        "maxLength", "minItems", "maxItems", "items", "minProperties", "maxProperties",
        "title", "description", "$comment", "default", "examples",
    }
)  # fmt: skip
_SUBSCHEMA_MAPS = ("properties",)
_SUBSCHEMAS = ("additionalProperties", "items")


def _portable(schema: Any, formats: set[str]) -> bool:
    """Whether ``schema`` uses only :data:`_PORTABLE` keywords (collecting its formats)."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, Mapping) or not set(schema) <= _PORTABLE:
        return False
    if isinstance(schema.get("format"), str):
        formats.add(schema["format"])
    for key in _SUBSCHEMA_MAPS:
        if key in schema and not all(_portable(sub, formats) for sub in schema[key].values()):
            return False
    return all(_portable(schema[key], formats) for key in _SUBSCHEMAS if key in schema)


def _fast_check(schema: Mapping[str, Any]) -> Callable[[Any], Any] | None:
    """fastjsonschema's compiled check of a portable schema, checking formats exactly as
    jsonschema does (and those jsonschema does not check, not at all); else ``None``."""
    formats: set[str] = set()
    if not _portable(schema, formats):
        return None
    checker = Draft202012Validator.FORMAT_CHECKER

    def conforms(name: str) -> Callable[[Any], bool]:
        return lambda value: checker.conforms(value, name)

    try:
        return fastjsonschema.compile(
            {**schema, "$schema": "http://json-schema.org/draft-07/schema#"},
            formats={name: conforms(name) for name in formats},
        )
    except fastjsonschema.JsonSchemaDefinitionException:
        return None


@dataclass(frozen=True)
class TypeInfo:
    """A record type with its field and its compiled schema."""

    spec: RecordType
    field: str
    validator: Draft202012Validator
    fast: Callable[[Any], Any] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def validate(self, data: Mapping[str, Any]) -> None:
        """:class:`SchemaViolation` listing where ``data`` fails the schema, else nothing."""
        if self.fast is not None:
            try:
                self.fast(data)
                return
            except fastjsonschema.JsonSchemaValueException:
                pass  # jsonschema says where, or overrules
        found: list[Violation] = []
        for error in sorted(self.validator.iter_errors(data), key=lambda e: list(e.path)):
            found.extend(_violations(error))
            if len(found) >= MAX_VIOLATIONS:
                break
        if found:
            raise SchemaViolation(found[:MAX_VIOLATIONS])

    def owner_in(self, data: Mapping[str, Any]) -> str | None:
        """The owner a document names itself (``owner_property``), if its type has one."""
        name = self.spec.owner_property
        value = data.get(name) if name else None
        return value if isinstance(value, str) and value else None

    def keys(self, data: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(path, text)`` of the indexed paths that hold a scalar in ``data``."""
        keys = []
        for path, parts in self.indexed_parts:
            value: Any = data
            for part in parts:
                value = value.get(part) if isinstance(value, Mapping) else None
            if type(value) is str:
                keys.append((path, value))
            elif value is not None and not isinstance(value, Mapping | list):
                keys.append((path, as_text(value)))
        return keys

    @cached_property
    def indexed_parts(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The indexed paths with their parts, split once."""
        return tuple((path, tuple(path.split("."))) for path in self.spec.indexed)


def as_text(value: Any) -> str:
    """A scalar as searches compare it: JSON's spelling of booleans and numbers."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


class TypeRegistry:
    """The record types of the installed field plugins, by name."""

    def __init__(self, types: Iterable[tuple[str, RecordType]]) -> None:
        self._types: dict[str, TypeInfo] = {}
        for field_id, spec in types:
            validator = Draft202012Validator(
                dict(spec.schema), format_checker=Draft202012Validator.FORMAT_CHECKER
            )
            fast = _fast_check(spec.schema)
            self._types[spec.name] = TypeInfo(spec, field_id, validator, fast)

    @classmethod
    def from_fields(cls, host: FieldHost) -> TypeRegistry:
        return cls(
            (field.info.id, spec) for field in host.fields.values() for spec in field.record_types
        )

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def get(self, name: str) -> TypeInfo:
        info = self._types.get(name)
        if info is None:
            known = ", ".join(sorted(self._types)) or "none are installed"
            raise InvalidArgument(f"unknown record type {name[:80]!r} (known: {known})")
        return info

    def all(self) -> list[TypeInfo]:
        return [self._types[name] for name in sorted(self._types)]
