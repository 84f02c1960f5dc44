"""Brute-force protection: failed logins lock an account, and separately a source address,
out for a while, longer each time (after Keycloak's brute-force detection).

Two counters run side by side, each under its own key: ``user:<username>`` counts failures
against one login name from anywhere (a password being guessed), ``source:<address>`` counts
failures from one address against any name (one machine trying many accounts). The account
key is the name asked for, not the principal, so that an unknown name is locked exactly like
a known one and lockouts tell nothing about which names exist.

Every ``threshold`` failures lock the key for ``base_seconds``, doubled at each further
lockout, up to ``max_seconds``. Failures older than ``reset_seconds`` (counted from the last
one) are forgotten. A successful login clears its account's counter but not its source's:
an attacker holding one good account must not be able to reset the counter of the address
it guesses others' passwords from.

A counter is read, then written: failures racing each other (from several connections at
once) may be counted once, so a lockout can come a few failures late, never not at all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Lock:
    """Failures counted under one key."""

    key: str
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0

    def locked(self, now: float) -> bool:
        return self.locked_until > now


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    threshold: int = 5
    source_threshold: int = 20
    base_seconds: float = 60.0
    max_seconds: float = 3600.0
    reset_seconds: float = 12 * 3600.0

    def failed(self, lock: Lock, now: float) -> Lock:
        """``lock`` after one more failure at ``now``."""
        failures = lock.failures
        if now - lock.last_failure > self.reset_seconds:
            failures = 0
        failures += 1
        threshold = self.source_threshold if lock.key.startswith("source:") else self.threshold
        until = lock.locked_until
        if failures % threshold == 0:
            lockouts = failures // threshold
            wait = min(self.max_seconds, self.base_seconds * 2 ** min(lockouts - 1, 30))
            until = now + wait
        return Lock(lock.key, failures, now, until)


def account_key(username: str) -> str:
    return f"user:{username.strip().casefold()[:128]}"


def source_key(source: str) -> str:
    return f"source:{host_of(source)[:128]}"


FORWARDED_FOR = "x-forwarded-for"
"""gRPC metadata by which a trusted proxy (the IOC console, a gateway) names its client."""


def client_source(peer: str, forwarded: str | None, trusted: frozenset[str]) -> str:
    """Who is logging in, for the lockout and the audit: the gRPC peer, unless the peer is a
    trusted proxy (``identity.trusted_proxies``) that names its client in ``x-forwarded-for``;
    then that client, so that one guesser behind the console locks out that guesser, not
    everyone who logs in through the console. Only the first (client-most) address counts,
    and only when it is an IP address; anything else leaves the peer as the source."""
    if not forwarded or host_of(peer) not in trusted:
        return peer
    try:
        address = ipaddress.ip_address(forwarded.split(",", 1)[0].strip())
    except ValueError:
        return peer
    if address.version == 4:
        return f"ipv4:{address}:0"
    return f"ipv6:[{address}]:0"


def host_of(peer: str) -> str:
    """The address of a gRPC peer (``ipv4:10.0.0.5:41234``, ``ipv6:[::1]:5000``) without
    its port: a client gets a new port for every connection."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer
