"""Sessions in memory: ids and CSRF tokens, expiry, room for new sessions, and which fields a
user's roles name; no network."""

from __future__ import annotations

import pytest
from console_support import Clock, settings

from smartcity.runtime.errors import ResourceExhausted
from smartcity.services.console.sessions import SessionStore, TokenPair, User


def _pair(now: float, lifetime: float = 900) -> TokenPair:
    return TokenPair("access", now + lifetime, "refresh", now)


def _user(*roles: str) -> User:
    return User("p-1", "op.an", "Op An", roles)


class _Stream:
    def __init__(self) -> None:
        self.closed: str | None = None
        self.renewals = 0

    def renew(self) -> None:
        self.renewals += 1

    def close(self, reason: str) -> None:
        self.closed = reason


def test_a_token_is_due_a_margin_before_it_expires_or_at_two_thirds_of_a_short_life() -> None:
    pair = _pair(1000.0)
    assert not pair.due(1000.0 + 900 - 61, margin=60)
    assert pair.due(1000.0 + 900 - 60, margin=60)
    short = _pair(1000.0, lifetime=30)
    assert not short.due(1019.0, margin=60)
    assert short.due(1020.0, margin=60)


@pytest.mark.parametrize(
    ("roles", "fields"),
    [
        (("viewer:*",), None),
        (("operator:water_supply", "engineer:*"), None),
        (("operator:water_supply", "viewer:traffic"), {"water_supply", "traffic"}),
        (("records_officer:health", "identity_admin:*"), set()),
        (("not a binding", "viewer:"), set()),
    ],
)
def test_the_fields_a_user_may_view_follow_from_their_roles(
    roles: tuple[str, ...], fields: set[str] | None
) -> None:
    assert _user(*roles).viewable_fields() == (None if fields is None else frozenset(fields))
    assert User("p-2", "x", "x", None).viewable_fields() is None


def test_logging_in_replaces_the_session_and_its_csrf_token() -> None:
    store = SessionStore(settings())
    before = store.open()
    stream = _Stream()
    before.streams.add(stream)
    after = store.promote(before, _pair(store.now()), _user("viewer:*"))
    assert after.id != before.id
    assert after.csrf_token != before.csrf_token
    assert store.get(before.id) is None
    assert store.get(after.id) is after
    assert after.authenticated
    assert stream.closed == "logged in again"


def test_the_csrf_check_compares_any_header_value_without_raising() -> None:
    session = SessionStore(settings()).open()
    assert session.csrf_matches(session.csrf_token)
    for presented in (
        None,
        "",
        "é" * 43,
        "\udcff",
        session.csrf_token[:-1],
        " " + session.csrf_token,
    ):
        assert not session.csrf_matches(presented)


def test_idle_sessions_expire_unless_a_live_stream_is_open() -> None:
    clock = Clock(1_000_000.0)
    store = SessionStore(settings(anonymous_timeout_seconds=60, idle_timeout_seconds=600), clock)
    anonymous = store.open()
    watching = store.promote(store.open(), _pair(clock.now), _user("viewer:*"))
    idle = store.promote(store.open(), _pair(clock.now), _user("viewer:*"))
    stream = _Stream()
    watching.streams.add(stream)
    clock.now += 61
    assert store.get(anonymous.id) is None
    assert store.get(idle.id) is idle  # used now: its idle time starts again
    clock.now += 601
    ended = store.expire()
    assert ended == [idle]
    assert store.get(watching.id) is watching
    assert stream.closed is None
    assert idle.ended == "the session expired"
    assert anonymous.ended


def test_new_sessions_push_out_the_oldest_that_never_logged_in_and_no_others() -> None:
    store = SessionStore(settings(max_sessions=3))
    first, second = store.open(), store.open()
    logged_in = store.promote(store.open(), _pair(store.now()), _user("viewer:*"))
    assert len(store) == 3
    third = store.open()
    assert first.ended
    assert not second.ended
    store.open()
    assert second.ended
    assert not third.ended
    assert len(store) == 3
    assert store.get(logged_in.id) is logged_in
    full = SessionStore(settings(max_sessions=1))
    full.promote(full.open(), _pair(full.now()), _user("viewer:*"))
    with pytest.raises(ResourceExhausted, match="maximum of 1 sessions"):
        full.open()


def test_a_renewed_token_reaches_the_live_streams_and_an_end_closes_them() -> None:
    store = SessionStore(settings())
    session = store.promote(store.open(), _pair(store.now()), _user("viewer:*"))
    stream = _Stream()
    session.streams.add(stream)
    session.renewed(_pair(store.now()))
    assert stream.renewals == 1
    store.discard(session, "logged out")
    assert stream.closed == "logged out"
    assert not session.authenticated
