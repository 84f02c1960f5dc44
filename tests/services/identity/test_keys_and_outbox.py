"""Signing keys at rest, password hashes that follow the configured cost, and identity
events that wait in the store while the bus is down."""

from __future__ import annotations

from pathlib import Path

import pytest
from identity_support import PASSWORD, Clock, add_staff, identity_settings, opened

from smartcity.runtime.config import Settings
from smartcity.services.identity.keys import KeyRingError
from smartcity.services.identity.model import AuditEvent, EventType
from smartcity.services.identity.service import IdentityService


def configured(store_url: str, tmp_path: Path, **identity: object) -> Settings:
    return Settings(data_dir=tmp_path, identity=identity_settings(store_url, **identity))


async def test_private_keys_are_encrypted_with_the_configured_passphrase(
    store_url: str, tmp_path: Path, clock: Clock
) -> None:
    secret = configured(store_url, tmp_path, key_passphrase="city vault passphrase")
    async with opened(secret, clock) as service:
        (stored,) = await service.store.signing_keys()
        assert stored.private_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        kid = stored.kid
    wrong = configured(store_url, tmp_path, key_passphrase="another passphrase")
    with pytest.raises(KeyRingError, match=r"wrong identity\.key_passphrase"):
        async with opened(wrong, clock):
            pass
    async with opened(secret, clock) as service:
        assert service.issuer.ring.signing.kid == kid  # the same key, read back


async def test_without_a_passphrase_keys_are_stored_plain(identity: IdentityService) -> None:
    (stored,) = await identity.store.signing_keys()
    assert stored.private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


async def test_a_hash_made_with_other_argon2_parameters_is_replaced_at_login(
    store_url: str, tmp_path: Path, clock: Clock
) -> None:
    async with opened(configured(store_url, tmp_path), clock) as service:
        staff_id = await add_staff(service, "operator.a")
        before = (await service.store.credentials(staff_id)).password_hash
    async with opened(configured(store_url, tmp_path, argon2_time_cost=2), clock) as service:
        assert (await service.logins.login("operator.a", PASSWORD, "", "test")).tokens
        after = (await service.store.credentials(staff_id)).password_hash
    assert ",t=1," in before
    assert ",t=2," in after


class FlakyBus:
    def __init__(self) -> None:
        self.down = True
        self.published: list[AuditEvent] = []

    async def __call__(self, events: list[AuditEvent]) -> None:
        if self.down:
            raise ConnectionError("nats: no servers available")
        self.published += events


async def test_events_wait_in_the_store_while_the_bus_is_down(
    store_url: str, tmp_path: Path, clock: Clock
) -> None:
    bus = FlakyBus()
    async with opened(configured(store_url, tmp_path), clock, publisher=bus) as service:
        await add_staff(service, "operator.a", "viewer:traffic")
        assert (await service.logins.login("operator.a", PASSWORD, "", "test")).tokens
        assert bus.published == []
        pending = await service.store.unpublished()
        assert [event.type for event in pending] == [
            EventType.PRINCIPAL_CREATED,
            EventType.ROLE_ASSIGNED,
            EventType.LOGIN_SUCCEEDED,
        ]
        bus.down = False
        assert await service.recorder.flush() == 3
        assert [event.id for event in bus.published] == [event.id for event in pending]
        assert await service.store.unpublished() == []
        assert await service.recorder.flush() == 0
