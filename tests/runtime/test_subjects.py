from __future__ import annotations

import pytest

from smartcity.runtime import subjects
from smartcity.runtime.subjects import SubjectError


def test_builders_follow_the_design():
    assert (
        subjects.telemetry_subject("electricity", "hoa-khanh-110kv", "bay-1-meter")
        == "city.telemetry.electricity.hoa-khanh-110kv.bay-1-meter"
    )
    assert subjects.alert_subject("water_supply", "critical") == "city.alerts.water_supply.critical"
    assert subjects.record_subject("school", "created") == "city.records.school.created"
    assert subjects.identity_subject("keys_rotated") == "city.identity.keys_rotated"
    assert subjects.agent_subject("cau-do", "agent-1") == "city.agents.cau-do.agent-1"
    assert subjects.command_subject("cau-do", "pump-2") == "city.commands.cau-do.pump-2"


def test_non_ascii_tokens_are_allowed():
    assert subjects.telemetry_subject("environment", "hòa-khánh", "trạm-1").split(".")[3:] == [
        "hòa-khánh",
        "trạm-1",
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("site.a", "'.'"),
        ("*", "'*'"),
        ("all>", "'>'"),
        ("two words", "' '"),
        ("tab\there", "'\\t'"),
        ("line\nbreak", "'\\n'"),
        ("nul\x00", "'\\x00'"),
    ],
)
def test_a_token_that_would_change_the_subject_is_refused(value, shown):
    with pytest.raises(SubjectError) as caught:
        subjects.telemetry_subject("electricity", value, "meter")
    message = str(caught.value)
    assert message.startswith(f"site {value!r}")
    assert shown in message


@pytest.mark.parametrize("value", ["", None, 7])
def test_empty_or_non_string_tokens_are_refused(value):
    with pytest.raises(SubjectError, match="device"):
        subjects.command_subject("site", value)


def test_subject_error_is_a_value_error():
    with pytest.raises(ValueError, match="severity"):
        subjects.alert_subject("traffic", "high alert")


def test_filters_use_wildcards_only_where_asked():
    assert subjects.telemetry_filter() == "city.telemetry.*.*.*"
    assert subjects.telemetry_filter(field="water_supply") == "city.telemetry.water_supply.*.*"
    assert subjects.telemetry_filter(site="cau-do", device="p1") == "city.telemetry.*.cau-do.p1"
    assert subjects.alert_filter(severity="critical") == "city.alerts.*.critical"
    with pytest.raises(SubjectError):
        subjects.telemetry_filter(field="a.b")


def test_stream_subjects_cover_the_builders():
    assert subjects.ALL_TELEMETRY == "city.telemetry.>"
    assert subjects.ALL_ALERTS == "city.alerts.>"
    assert subjects.ALL_RECORDS == "city.records.>"
    assert subjects.ALL_IDENTITY == "city.identity.>"


def test_parse_telemetry_subject_round_trips():
    subject = subjects.telemetry_subject("lighting", "son-tra", "cabinet-7")
    parsed = subjects.parse_telemetry_subject(subject)
    assert parsed == ("lighting", "son-tra", "cabinet-7")
    assert parsed.site == "son-tra"


@pytest.mark.parametrize(
    "subject",
    [
        "city.telemetry.lighting.son-tra",
        "city.telemetry.lighting.son-tra.cabinet.7",
        "city.alerts.lighting.son-tra.cabinet",
        "city.telemetry.lighting.*.cabinet",
        "city.telemetry.lighting..cabinet",
    ],
)
def test_parse_telemetry_subject_refuses_other_subjects(subject):
    with pytest.raises(SubjectError):
        subjects.parse_telemetry_subject(subject)
