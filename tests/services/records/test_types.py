"""The record types the city's field plugins declare, and what a declaration must be."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from records_support import city_types, facility, health, ticket

from smartcity.fields import RecordAccess, RecordType, RecordWorkflow
from smartcity.services.records.schemas import SchemaViolation

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"enum": ["open", "done"]}, "note": {"type": "string"}},
}


def test_the_city_declares_its_record_types_with_their_fields() -> None:
    declared = {(info.name, info.field, info.spec.access) for info in city_types().all()}
    assert declared == {
        ("health_record", "health", RecordAccess.OWNER),
        ("school_record", "education", RecordAccess.OWNER),
        ("feedback_ticket", "citizen_services", RecordAccess.OWNER),
        ("food_facility", "food_safety", RecordAccess.PUBLIC),
        ("accommodation_registration", "tourism", RecordAccess.FIELD),
        ("site", "governance", RecordAccess.PUBLIC),
    }
    assert [i.name for i in city_types().all() if i.spec.sensitive] == ["health_record"]
    flow = city_types().get("feedback_ticket").spec.workflow
    assert flow is not None
    assert flow.initial == ("new",)
    assert [s for s in ("assigned", "resolved") if flow.allows("new", s)] == ["assigned"]


@pytest.mark.parametrize(
    ("kind", "document"),
    [
        ("health_record", health("c-1")),
        ("feedback_ticket", ticket("c-1")),
        ("food_facility", facility()),
        (
            "school_record",
            {
                "student_id": "s-1",
                "student": {"full_name": "Tran Thi Binh", "birth_date": "2014-05-02"},
                "school_id": "thcs-nguyen-hue",
                "school_year": "2025-2026",
                "grade": 6,
                "subjects": [{"subject": "math", "score": 8.5}],
            },
        ),
        (
            "accommodation_registration",
            {
                "establishment_id": "hotel-42",
                "guest": {
                    "full_name": "Jane Doe",
                    "nationality": "AU",
                    "document_type": "passport",
                    "document_number": "PA1234567",
                },
                "check_in": "2026-11-30",
            },
        ),
        (
            "site",
            {
                "site_id": "son-tra-air",
                "name": "Son Tra air-quality station",
                "name_vi": "Trạm quan trắc không khí Sơn Trà",
                "kind": "air_quality_station",
                "fields": ["environment"],
                "location": {"lat": 16.0822, "lon": 108.2354},
            },
        ),
    ],
)
def test_a_sample_of_every_type_is_valid_and_a_broken_one_names_its_path(
    kind: str, document: dict[str, Any]
) -> None:
    info = city_types().get(kind)
    info.validate(document)
    broken = {**document, "unexpected": 1}
    with pytest.raises(SchemaViolation) as caught:
        info.validate(broken)
    assert [str(v) for v in caught.value.violations] == ["/unexpected: not allowed"]


def test_a_whole_number_arrives_as_a_float_and_is_stored_as_an_integer() -> None:
    from smartcity.services.records.schemas import Limits, canonical

    assert canonical({"grade": 6.0, "score": 8.5, "list": [1.0]}, Limits()) == {
        "grade": 6,
        "score": 8.5,
        "list": [1],
    }
    with pytest.raises(SchemaViolation, match="/score: not a finite number"):
        canonical({"score": float("nan")}, Limits())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": 0}, "version must be a whole number"),
        ({"indexed": ("nowhere",)}, "indexed path 'nowhere' is not a schema property"),
        ({"workflow": RecordWorkflow("note", ("a",), {"a": ("b",)})}, "needs an enum"),
        ({"schema": {**SCHEMA, "properties": {"status": {"type": 7}}}}, "not a valid JSON Schema"),
    ],
)
def test_a_wrong_declaration_is_refused_saying_why(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecordType(**{"name": "permit", "title": "Permit", "schema": SCHEMA, **changes})


def test_a_workflow_must_start_from_its_own_states() -> None:
    with pytest.raises(ValueError, match="initial states"):
        RecordWorkflow("status", ("closed",), {"open": ("done",)})


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats()
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(value=JSONISH, depth=st.integers(0, 4))
def test_canonical_gives_the_careful_walks_verdict(value: Any, depth: int) -> None:
    """The fast walk and the careful one (which names the place) agree on every input: the
    same document, or the same refusal."""
    from smartcity.services.records.schemas import Limits, _careful, canonical

    limits = Limits(max_depth=depth)
    try:
        expected: Any = _careful(value, limits, ())
    except SchemaViolation as exc:
        expected = [str(v) for v in exc.violations]
        with pytest.raises(SchemaViolation) as caught:
            canonical(value, limits)
        assert [str(v) for v in caught.value.violations] == expected
    else:
        assert canonical(value, limits) == expected


@pytest.mark.parametrize(
    ("value", "depth", "verdict"),
    [
        ({"a": {"b": 1}}, 2, {"a": {"b": 1}}),
        ({"a": {"b": 1}}, 1, "/a/b: nested deeper than 1 levels"),
        ({"a": {}}, 1, {"a": {}}),
        ([2**53, -(2**53), 9007199254740992.0], 3, [2**53, -(2**53), 2**53]),
        ([2**53 + 1], 3, "/0: integer too large (beyond 2^53)"),
        ({"x": [0.5, float("-inf")]}, 3, "/x/1: not a finite number"),
        ({"k": {1: "v"}}, 3, "/k: object keys must be text"),
        ({"k": {1, 2}}, 3, "/k: not a JSON value (set)"),
    ],
)
def test_canonical_by_hand(value: Any, depth: int, verdict: Any) -> None:
    from smartcity.services.records.schemas import Limits, canonical

    if isinstance(verdict, str):
        with pytest.raises(SchemaViolation) as caught:
            canonical(value, Limits(max_depth=depth))
        assert [str(v) for v in caught.value.violations] == [verdict]
    else:
        assert canonical(value, Limits(max_depth=depth)) == verdict
