"""The governance field's ``site`` records: the register of the places where the city operates
equipment, checked by the records service's own schema validation and access policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.fields import RecordAccess, load_fields
from smartcity.runtime.errors import PermissionDenied
from smartcity.runtime.tokens import Claims, PrincipalKind, RoleBinding
from smartcity.services.records.access import AccessPolicy
from smartcity.services.records.schemas import SchemaViolation, TypeInfo, TypeRegistry

SITE: dict[str, Any] = {
    "site_id": "hoa-khanh-110kv",
    "name": "Hoa Khanh 110 kV substation",
    "name_vi": "Trạm biến áp 110 kV Hòa Khánh",
    "kind": "substation",
    "fields": ["electricity", "energy"],
    "location": {"lat": 16.0597, "lon": 108.1503},
    "address": "Hoa Khanh industrial park, Lien Chieu",
}


@pytest.fixture(scope="module")
def site() -> TypeInfo:
    return TypeRegistry.from_fields(load_fields()).get("site")


def test_the_governance_field_declares_the_site_type(site: TypeInfo) -> None:
    assert site.field == "governance"
    assert site.spec.access is RecordAccess.PUBLIC
    assert site.spec.indexed == ("site_id", "kind")
    site.validate(SITE)
    site.validate({key: value for key, value in SITE.items() if key != "address"})
    assert site.keys(SITE) == [("site_id", "hoa-khanh-110kv"), ("kind", "substation")]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"location": {"lat": 91, "lon": 108.2}}, "/location/lat"),
        ({"location": {"lat": 16.0, "lon": -180.5}}, "/location/lon"),
        ({"location": {"lat": 16.0}}, "/location/lon"),
        ({"site_id": "hoa.khanh"}, "/site_id"),
        ({"site_id": "Hoa Khanh"}, "/site_id"),
        ({"kind": "spaceport"}, "/kind"),
        ({"fields": []}, "/fields"),
        ({"fields": ["electricity", "electricity"]}, "/fields"),
        ({"fields": ["Electricity"]}, "/fields/0"),
        ({"name_vi": ""}, "/name_vi"),
        ({"colour": "red"}, "/colour"),
    ],
)
def test_a_wrong_site_is_refused_naming_the_path(
    site: TypeInfo, change: dict[str, Any], where: str
) -> None:
    with pytest.raises(SchemaViolation) as caught:
        site.validate({**SITE, **change})
    assert [str(v).split(":")[0] for v in caught.value.violations] == [where]


def test_a_site_without_a_location_is_refused(site: TypeInfo) -> None:
    with pytest.raises(SchemaViolation, match="location"):
        site.validate({key: value for key, value in SITE.items() if key != "location"})


def staff(*roles: str) -> Claims:
    now = datetime.now(UTC)
    return Claims(
        sub="staff-1",
        kind=PrincipalKind.STAFF,
        roles=frozenset(RoleBinding.parse(role) for role in roles),
        iss="test",
        aud=("smartcity",),
        iat=now,
        exp=now + timedelta(minutes=5),
        jti="t-1",
    )


def test_viewers_of_any_field_read_sites_and_records_officers_write_them(
    site: TypeInfo,
) -> None:
    policy = AccessPolicy()
    for reader in ("viewer:electricity", "viewer:environment", "operator:water_supply"):
        assert policy.may_read(staff(reader), site, "")
    policy.check_write(staff("records_officer:governance"), site, "", creating=True)
    for writer in ("engineer:electricity", "viewer:governance", "records_officer:health"):
        with pytest.raises(PermissionDenied, match="records_officer role on field 'governance'"):
            policy.check_write(staff(writer), site, "", creating=True)


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(st.sampled_from([*SITE, "other"]) | st.text(max_size=10), JSON, max_size=8)
    | st.builds(lambda key, value: {**SITE, key: value}, st.sampled_from(list(SITE)), JSON)
)
def test_any_document_is_accepted_or_refused_with_a_reason(
    site: TypeInfo, data: dict[str, Any]
) -> None:
    violations: list[object] = []
    try:
        site.validate(data)
    except SchemaViolation as exc:
        violations = list(exc.violations)
        assert violations, "a refusal says why"
    if not violations:
        assert set(data) >= {"site_id", "name", "name_vi", "kind", "fields", "location"}
        assert -90 <= data["location"]["lat"] <= 90
