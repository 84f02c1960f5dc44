"""Notifications check themselves; any label text gives valid JSON and a valid e-mail."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from receivers_support import START, alert, notification

from smartcity.runtime.errors import InvalidArgument
from smartcity.services.alerts.receivers import (
    EmailReceiver,
    Notification,
    NotifiedAlert,
    ReceiversConfig,
    RetryPolicy,
    webhook,
)
from smartcity.services.alerts.receivers import email as email_receiver

INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
MAIL = EmailReceiver(to=["ioc@danang.example"], sender="alerts@ioc.example", host="localhost")

# -- the types refuse what no receiver could carry -------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "pending"}, "status must be one of firing, resolved"),
        ({"status": "resolved", "ends_at": None}, "a resolved alert needs ends_at"),
        ({"starts_at": datetime(2026, 1, 1)}, "starts_at must be a timezone-aware datetime"),
        ({"ends_at": START - timedelta(seconds=1)}, "ends_at lies before starts_at"),
        ({"labels": {"site": "\udc80"}}, "lone surrogate"),
        ({"labels": {"": "x"}}, "a name cannot be empty"),
        ({"labels": {"site": 7}}, "must be a str, not int"),
        ({"annotations": ["summary"]}, "annotations must be a mapping"),
        ({"fingerprint": ""}, "fingerprint cannot be empty"),
    ],
)
def test_a_malformed_alert_is_refused(change: dict, message: str) -> None:
    fields = {
        "fingerprint": "f1",
        "status": "firing",
        "labels": {},
        "annotations": {},
        "starts_at": START,
        "ends_at": None,
        **change,
    }
    with pytest.raises((TypeError, ValueError), match=message):
        NotifiedAlert(**fields)


def test_a_notification_status_must_agree_with_its_alerts() -> None:
    base = notification("duty", alert("a", "resolved"))
    with pytest.raises(ValueError, match="disagrees with its alerts"):
        Notification(**{**_fields(base), "status": "firing"})
    with pytest.raises(ValueError, match="alerts cannot be empty"):
        Notification(**{**_fields(base), "alerts": []})
    with pytest.raises(ValueError, match="truncated cannot be negative"):
        Notification(**{**_fields(base), "truncated": -1})
    with pytest.raises(TypeError, match="alert 0 is a dict"):
        Notification(**{**_fields(base), "alerts": [{"fingerprint": "a"}]})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alerts": None}, "not iterable"),
        ({"status": "pending"}, "status must be one of firing, resolved"),
        ({"alerts": [{"fingerprint": "a"}]}, "'ends_at' is missing"),
        ({"receiver": ""}, "receiver cannot be empty"),
        ({"alerts": [{**alert().to_dict(), "starts_at": "noon"}]}, "Invalid isoformat"),
        ({"truncated": "2"}, "truncated must be an int"),
    ],
)
def test_a_dictionary_that_is_no_notification_is_refused(change: dict, message: str) -> None:
    data = {**notification("duty").to_dict(), **change}
    with pytest.raises(InvalidArgument, match=message):
        Notification.from_dict(data)


def _fields(item: Notification) -> dict:
    return {name: getattr(item, name) for name in Notification.__dataclass_fields__}


def test_go_time_format() -> None:
    seven = timezone(timedelta(hours=7))
    assert webhook.rfc3339(datetime(2026, 11, 30, 18, 5, 3, 120000, tzinfo=seven)) == (
        "2026-11-30T11:05:03.12Z"
    )
    assert webhook.rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert webhook.rfc3339(datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.000007Z"
    )
    assert webhook.rfc3339(None) == "0001-01-01T00:00:00Z"


def test_back_off_doubles_up_to_its_cap() -> None:
    policy_ = RetryPolicy(initial_backoff_seconds=1, max_backoff_seconds=60)
    assert [policy_.backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy_.backoff(100_000) == 60


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ({"kind": "webhook", "url": "not a url"}, "url"),
        (
            {
                "kind": "webhook",
                "url": "http://x/",
                "bearer_token": "t",
                "basic_auth": {"username": "u", "password": "p"},
            },
            "bearer_token or basic_auth, not both",
        ),
        ({"kind": "webhook", "url": "http://x/", "retries": 3}, "Extra inputs are not permitted"),
        ({"kind": "email", "to": ["a@x"], "sender": "me\r\nBcc: all@x", "host": "h"}, "e-mail"),
        ({"kind": "email", "to": [], "sender": "me@x", "host": "h"}, "at least 1 item"),
        (
            {"kind": "email", "to": ["a@x"], "sender": "me@x", "host": "h", "username": "u"},
            "together",
        ),
        ({"kind": "pager"}, "does not match any of the expected tags"),
    ],
)
def test_a_bad_receiver_configuration_is_refused(receiver: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReceiversConfig.model_validate({"receivers": {"r": receiver}})


# -- any label text: valid JSON, a valid e-mail ------------------------------------------------

text = st.one_of(
    st.text(),  # every code point but surrogates: control characters, RTL marks, emoji
    st.text(alphabet=st.sampled_from("\x00\r\n\x1b\u2028\u202e\ufeffđ"), max_size=40),
    st.integers(3000, 20000).map(lambda n: ("Đà Nẵng\x00\r\n" * n)[:n]),
)
names = st.text(min_size=1, max_size=40)
labels = st.dictionaries(names, text, max_size=4)


@st.composite
def notifications(draw: st.DrawFn) -> Notification:
    alerts = [
        NotifiedAlert(
            fingerprint=draw(st.text(min_size=1, max_size=40)),
            status="firing",
            labels=draw(labels),
            annotations=draw(labels),
            starts_at=START,
            ends_at=None,
            generator_url=draw(text),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    return Notification(
        receiver=draw(st.text(min_size=1, max_size=40)),
        group_key=draw(st.text(min_size=1, max_size=200)),
        group_labels=draw(labels),
        common_labels=draw(labels),
        common_annotations=draw(labels),
        alerts=alerts,
        status="firing",
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notifications())
def test_any_text_gives_valid_json_that_carries_it_exactly(item: Notification) -> None:
    encoded = webhook.encode(webhook.payload(item))
    decoded = json.loads(encoded.decode("utf-8"))
    assert decoded["groupKey"] == item.group_key
    assert decoded["groupLabels"] == dict(item.group_labels)
    for sent, got in zip(item.alerts, decoded["alerts"], strict=True):
        assert got["labels"] == dict(sent.labels)
        assert got["annotations"] == dict(sent.annotations)
        assert got["generatorURL"] == sent.generator_url
    # The outbox keeps the notification as JSON too: it comes back the same.
    assert Notification.from_dict(json.loads(json.dumps(item.to_dict()))) == item


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notifications())
def test_any_text_gives_a_valid_email_that_shows_it_safely(item: Notification) -> None:
    mail = email_receiver.message(MAIL, item, now=START)
    raw = mail.as_bytes()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n") if b"\n" not in line)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == email_receiver.subject(item)
    assert parsed["To"] == "ioc@danang.example"
    assert len(parsed.get_all("Subject")) == 1  # no label can add a header
    content = parsed.get_content().replace("\r\n", "\n")  # SMTP's line ends
    assert content == email_receiver.body(item)
    # Nothing invisible reaches the reader: every line break is one the body put there.
    assert not any(unicodedata.category(char) in INVISIBLE for char in content.replace("\n", ""))
    assert len(parsed["Subject"]) <= email_receiver.MAX_SUBJECT_CHARS
