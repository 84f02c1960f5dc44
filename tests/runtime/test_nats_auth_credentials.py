"""Credentials files, the settings that name them, the server's refusals in words, and the
written authorization folder: every file and every server message gets a verdict."""

from __future__ import annotations

import stat

import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.runtime.config import ConfigError, NatsSettings, load_settings
from smartcity.runtime.nats_auth.credentials import (
    CredentialsError,
    NatsCredentials,
    Refusals,
    inbox_prefix,
    parse_violation,
    read_credentials_file,
    resolve_credentials,
    write_credentials_file,
)
from smartcity.runtime.nats_auth.plan import AgentPlan, DeviceRef, platform_principals
from smartcity.runtime.nats_auth.render import write_authorization


def test_a_credentials_file_is_written_0600_and_read_back(tmp_path):
    path = tmp_path / "credentials" / "agent-north.yaml"
    write_credentials_file(path, "agent-north", "s3cret: 'x'", about="edge agent north")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    credentials = read_credentials_file(path)
    assert credentials == NatsCredentials("agent-north", "s3cret: 'x'", str(path))
    assert "s3cret" not in repr(credentials)
    assert "SMARTCITY_NATS__CREDENTIALS_FILE=" in path.read_text()
    write_credentials_file(path, "agent-north", "new", about="edge agent north")
    assert read_credentials_file(path).password == "new"
    assert [p.name for p in path.parent.iterdir()] == ["agent-north.yaml"]  # no leftovers


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"user: a\n", "`password` must be a non-empty string"),
        (b"user: a\npassword: ''\n", "`password` must be a non-empty string"),
        (b"user: 7\npassword: x\n", "`user` must be a non-empty string"),
        (b"user: a\npassword: x\ntoken: y\n", "unknown key(s) token"),
        (b"- user\n", "holds `user:` and `password:`"),
        (b"user: [a\n", "invalid YAML"),
        (b"\xff\xfe", "not UTF-8"),
        (b"#" * 70_000, "over 64 KiB"),
    ],
)
def test_a_wrong_credentials_file_is_refused_naming_it(tmp_path, content, reason):
    path = tmp_path / "creds.yaml"
    path.write_bytes(content)
    with pytest.raises(CredentialsError) as refused:
        read_credentials_file(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert reason in str(refused.value)


def test_a_missing_credentials_file_is_refused(tmp_path):
    with pytest.raises(CredentialsError, match="cannot read NATS credentials"):
        read_credentials_file(tmp_path / "absent.yaml")
    with pytest.raises(CredentialsError, match="cannot read NATS credentials"):
        read_credentials_file(tmp_path)


@settings(max_examples=200, deadline=None)
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_in_a_credentials_file_get_a_verdict(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("creds") / "c.yaml"
    path.write_bytes(content)
    try:
        credentials = read_credentials_file(path)
    except CredentialsError as refused:
        verdict = str(refused)
        credentials = None
    if credentials is None:
        assert verdict.startswith(f"{path}: ")
    else:
        assert credentials.user
        assert credentials.password


def test_settings_take_a_file_or_a_user_and_password_but_not_both(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    write_credentials_file(path, "monitoring", "pw", about="monitoring")
    monkeypatch.setenv("SMARTCITY_NATS__CREDENTIALS_FILE", str(path))
    assert resolve_credentials(load_settings().nats) == ("monitoring", "pw", str(path))
    monkeypatch.setenv("SMARTCITY_NATS__USER", "records")
    with pytest.raises(ConfigError, match="set either credentials_file or user/password"):
        load_settings()
    monkeypatch.delenv("SMARTCITY_NATS__CREDENTIALS_FILE")
    monkeypatch.setenv("SMARTCITY_NATS__PASSWORD", "pw2")
    settings = load_settings().nats
    assert "pw2" not in repr(settings)  # a secret stays out of logs and tracebacks
    assert resolve_credentials(settings) == ("records", "pw2", "nats.user")
    monkeypatch.delenv("SMARTCITY_NATS__USER")
    with pytest.raises(ConfigError, match="a password needs a user"):
        load_settings()
    assert resolve_credentials(NatsSettings()) is None


def test_each_user_has_its_own_inbox_prefix():
    assert inbox_prefix(None) == "_INBOX"
    assert inbox_prefix("agent-north") == "_INBOX.agent-north"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('nats: permissions violation for publish to "city.records.a.b"', "publish"),
        ("nats: 'Permissions Violation for Subscription to \"city.>\"'", "subscribe"),
        ('nats: permissions violation for subscription to "c.x" using queue "q"', "subscribe"),
        # The server quotes subjects as Go does: \" and \\ inside.
        ('nats: permissions violation for publish to "c.\\"q\\".b\\\\"', "publish"),
    ],
)
def test_a_permission_refusal_is_put_in_words(message, expected):
    refusals = Refusals("agent-north")
    sentence = refusals.record(message)
    assert sentence is not None
    assert "NATS user 'agent-north' may not" in sentence
    refusal = parse_violation(message)
    assert refusal is not None
    assert refusal.action == expected
    assert refusal.subject in ("city.records.a.b", "city.>", "c.x", 'c."q".b\\')
    assert refusals.take(expected, refusal.subject.upper()) is not None  # nats-py lower-cases
    assert refusals.take(expected, refusal.subject) is None  # taken once


@given(st.text(max_size=200))
def test_any_error_text_gets_a_verdict(text):
    refusals = Refusals(None)
    sentence = refusals.record(text)
    assert sentence is None or sentence.startswith("this NATS connection (no user) may not")
    assert refusals.record(RuntimeError(text)) == sentence


def test_rewriting_keeps_passwords_unless_rotated(tmp_path):
    north = AgentPlan("north", (DeviceRef("electricity", "hoa-khanh", "meter"),))
    first = write_authorization(tmp_path, platform_principals([]), rounds=4)
    assert set(first.created) == set(first.credentials)
    before = {
        user: read_credentials_file(path).password for user, path in first.credentials.items()
    }

    second = write_authorization(tmp_path, platform_principals([north]), rounds=4)
    assert second.created == ("agent-north",)
    after = {
        user: read_credentials_file(path).password for user, path in second.credentials.items()
    }
    assert {user: after[user] for user in before} == before
    config = second.authorization.read_text()
    assert stat.S_IMODE(second.authorization.stat().st_mode) == 0o600
    for user, password in after.items():
        assert password not in config  # only hashes reach the server's file
        line = config.split(f'user: "{user}"', 1)[1].split("\n")[1]
        stored = line.split('"')[1]
        assert stored.startswith("$2a$04$")
        assert bcrypt.checkpw(password.encode(), stored.encode())

    third = write_authorization(tmp_path, platform_principals([north]), rotate=True, rounds=4)
    assert set(third.created) == set(third.credentials)
    rotated = {
        user: read_credentials_file(path).password for user, path in third.credentials.items()
    }
    assert all(rotated[user] != after[user] for user in after)


def test_a_damaged_or_weak_credentials_file_gets_a_new_password(tmp_path):
    first = write_authorization(tmp_path, platform_principals([]))
    first.credentials["records"].write_text("garbage: [", encoding="utf-8")
    write_credentials_file(first.credentials["alerts"], "alerts", "hunter2", about="typed")
    write_credentials_file(first.credentials["console"], "monitoring", "x" * 43, about="moved")
    second = write_authorization(tmp_path, platform_principals([]))
    assert second.created == ("records", "alerts", "console")
    for user in second.created:
        credentials = read_credentials_file(second.credentials[user])
        assert credentials.user == user
        assert len(credentials.password) == 43
