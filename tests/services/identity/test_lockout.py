"""The lockout rule on its own: every threshold of failures locks, each lockout at least as
long as the one before and never longer than the cap, and old failures are forgotten."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from smartcity.services.identity.lockout import (
    Lock,
    LockoutPolicy,
    account_key,
    client_source,
    host_of,
    source_key,
)

POLICY = LockoutPolicy(threshold=3, source_threshold=5, base_seconds=10, max_seconds=300)


@given(gaps=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=60))
def test_lockouts_come_at_every_threshold_and_only_grow_to_the_cap(gaps: list[float]) -> None:
    lock, now, waits = Lock(account_key("operator.a")), 1_000_000.0, []
    for gap in gaps:
        now += gap
        before = lock
        lock = POLICY.failed(lock, now)
        assert lock.failures == before.failures + 1
        if lock.locked_until != before.locked_until:
            assert lock.failures % POLICY.threshold == 0
            waits.append(lock.locked_until - now)
    assert waits == sorted(waits)
    assert all(POLICY.base_seconds <= wait <= POLICY.max_seconds for wait in waits)
    assert len(waits) == len(gaps) // POLICY.threshold


def test_failures_older_than_the_reset_time_are_forgotten() -> None:
    lock = POLICY.failed(POLICY.failed(Lock(account_key("a")), 0.0), 1.0)
    later = POLICY.failed(lock, 1.0 + POLICY.reset_seconds + 1)
    assert later.failures == 1
    assert not later.locked(later.last_failure)


def test_sources_count_by_address_and_have_their_own_threshold() -> None:
    assert host_of("ipv4:10.0.0.5:41234") == host_of("ipv4:10.0.0.5:50000") == "10.0.0.5"
    assert host_of("ipv6:[::1]:5000") == "::1"
    assert host_of("unix:/run/identity.sock") == "unix:/run/identity.sock"
    lock = Lock(source_key("ipv4:10.0.0.5:41234"))
    for n in range(1, POLICY.source_threshold + 1):
        lock = POLICY.failed(lock, float(n))
        assert lock.locked(float(n)) == (n == POLICY.source_threshold)
    assert account_key("  Operator.A ") == account_key("operator.a")


TRUSTED = frozenset({"127.0.0.1"})


def test_a_trusted_proxy_names_its_client_by_the_first_forwarded_address() -> None:
    peer = "ipv4:127.0.0.1:5000"
    assert client_source(peer, "203.0.113.9, 10.0.0.1", TRUSTED) == "ipv4:203.0.113.9:0"
    assert client_source(peer, " 2001:db8::7 ", TRUSTED) == "ipv6:[2001:db8::7]:0"
    assert host_of(client_source(peer, "2001:db8::7", TRUSTED)) == "2001:db8::7"
    assert client_source("ipv4:10.9.9.9:1", "203.0.113.9", TRUSTED) == "ipv4:10.9.9.9:1"
    assert client_source(peer, None, TRUSTED) == peer


@given(peer=st.text(max_size=60), forwarded=st.one_of(st.none(), st.text(max_size=200)))
def test_any_forwarded_value_gives_the_peer_or_an_ip_address(
    peer: str, forwarded: str | None
) -> None:
    source = client_source(peer, forwarded, TRUSTED | {host_of(peer)})
    if source != peer:
        ipaddress.ip_address(host_of(source))  # an address, never the header's text
