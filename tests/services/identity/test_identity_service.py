"""The identity domain on both stores, without a network: registration, the password
policy, login and lockout, TOTP, refresh rotation with reuse detection, logout, disabling,
roles, service tokens and the audit."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from identity_support import PASSWORD, Clock, add_staff, opened, totp_code

from smartcity.runtime.config import Settings
from smartcity.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from smartcity.runtime.tokens import RoleBinding, TokenError, TokenVerifier, thumbprint
from smartcity.services.identity.model import (
    AssuranceLevel,
    AuditFilter,
    EventType,
    NewPrincipal,
    PrincipalFilter,
    PrincipalKind,
)
from smartcity.services.identity.service import IdentityService, local_operator
from smartcity.services.identity.sessions import TokenSet

CITIZEN = NewPrincipal(
    PrincipalKind.CITIZEN, "nguyen.van.a", display_name="Nguyễn Văn A", personal_id="048090001234"
)
SOURCE = "ipv4:10.0.0.5:41234"


async def login(identity: IdentityService, username: str, password: str = PASSWORD) -> TokenSet:
    result = await identity.logins.login(username, password, "", SOURCE)
    assert result.tokens is not None
    return result.tokens


async def events(identity: IdentityService, *kinds: EventType) -> list:
    page = await identity.audit(AuditFilter(types=frozenset(kinds)), 1000, "", local_operator())
    return page.items


def verifier(identity: IdentityService) -> TokenVerifier:
    """The runtime's verifier, as another service holds it: the published keys and nothing
    of the identity service's own."""
    return TokenVerifier(identity.issuer.ring.key_set(), is_revoked=identity.issuer.revoked)


async def test_a_citizen_registers_and_logs_in_with_a_token_any_service_verifies(
    identity: IdentityService, clock: Clock
) -> None:
    citizen = await identity.create_principal(CITIZEN, PASSWORD, "", None)
    assert citizen.assurance is AssuranceLevel.NONE
    assert not citizen.roles
    tokens = await login(identity, "nguyen.van.a")
    claims = verifier(identity).verify(tokens.access_token)
    assert (claims.sub, claims.kind, claims.aud, claims.amr) == (
        citizen.id, PrincipalKind.CITIZEN, ("smartcity",), ("pwd",)
    )  # fmt: skip
    assert claims.sid
    assert claims.auth_time is not None
    assert abs(claims.auth_time.timestamp() - clock.now) < 1
    assert claims.exp.timestamp() - claims.iat.timestamp() == 15 * 60
    header = jwt.get_unverified_header(tokens.access_token)
    signing = identity.issuer.ring.key_set()[header["kid"]]
    assert header["alg"] == "EdDSA"
    assert header["kid"] == thumbprint(signing)
    assert set(jwt.decode(tokens.access_token, options={"verify_signature": False})) == {
        "iss", "sub", "aud", "iat", "exp", "jti", "kind", "roles", "amr", "sid", "auth_time"
    }  # fmt: skip
    assert [event.principal_id for event in await events(identity, EventType.LOGIN_SUCCEEDED)] == [
        citizen.id
    ]


async def test_only_citizens_register_themselves_and_only_admins_raise_assurance(
    identity: IdentityService,
) -> None:
    staff = NewPrincipal(PrincipalKind.STAFF, "tran.thi.b")
    with pytest.raises(Unauthenticated):
        await identity.create_principal(staff, PASSWORD, "", None)
    raised = NewPrincipal(
        PrincipalKind.CITIZEN, "le.c", personal_id="048090009999", assurance=AssuranceLevel.LEVEL_2
    )
    with pytest.raises(PermissionDenied, match="assurance"):
        await identity.create_principal(raised, PASSWORD, "", None)
    created = await identity.create_principal(raised, PASSWORD, "", local_operator())
    assert created.assurance is AssuranceLevel.LEVEL_2
    tokens = await login(identity, "le.c")
    assert verifier(identity).verify(tokens.access_token).acr == "vneid:2"
    with pytest.raises(AlreadyExists, match="personal_id"):
        await identity.create_principal(
            NewPrincipal(PrincipalKind.CITIZEN, "le.c2", personal_id="048090009999"),
            PASSWORD, "", None,
        )  # fmt: skip


async def test_every_problem_of_a_registration_is_reported_at_once(
    identity: IdentityService,
) -> None:
    wrong = NewPrincipal(PrincipalKind.CITIZEN, "Bad Name", email="not-mail", personal_id="12")
    with pytest.raises(InvalidArgument) as refused:
        await identity.create_principal(wrong, "danang123", "", None)
    for part in ("username", "e-mail", "personal_id", "at least 10", "most common"):
        assert part in refused.value.message, part
    with pytest.raises(InvalidArgument, match="must not contain the username"):
        await identity.create_principal(
            NewPrincipal(PrincipalKind.CITIZEN, "hoang.d", personal_id="048090000001"),
            "my-hoang.d-secret", "", None,
        )  # fmt: skip


async def test_a_repeated_request_id_returns_the_first_principal(
    identity: IdentityService,
) -> None:
    first = await identity.create_principal(CITIZEN, PASSWORD, "req-1", None)
    again = await identity.create_principal(CITIZEN, PASSWORD, "req-1", None)
    assert again.id == first.id
    with pytest.raises(AlreadyExists, match="username"):
        await identity.create_principal(CITIZEN, PASSWORD, "req-2", None)
    assert len(await events(identity, EventType.PRINCIPAL_CREATED)) == 1


async def test_wrong_credentials_never_say_which_part_was_wrong(
    identity: IdentityService,
) -> None:
    await add_staff(identity, "operator.a")
    answers = []
    for username, password in (("operator.a", "wrong password!"), ("nobody", PASSWORD)):
        with pytest.raises(Unauthenticated) as refused:
            await identity.logins.login(username, password, "", SOURCE)
        answers.append(refused.value.message)
    assert answers == ["invalid credentials", "invalid credentials"]
    failed = await events(identity, EventType.LOGIN_FAILED)
    assert {event.source for event in failed} == {SOURCE}


async def test_repeated_failures_lock_the_account_longer_each_time(
    identity: IdentityService, clock: Clock
) -> None:
    await add_staff(identity, "operator.a")
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await identity.logins.login("operator.a", "wrong password!", "", SOURCE)
    with pytest.raises(ResourceExhausted, match="try again in 60 s"):
        await login(identity, "operator.a")  # the right password changes nothing now
    clock.advance(61)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await identity.logins.login("operator.a", "wrong password!", "", SOURCE)
    with pytest.raises(ResourceExhausted, match="try again in 120 s"):
        await login(identity, "operator.a")
    clock.advance(121)
    await login(identity, "operator.a")
    locked = await events(identity, EventType.LOCKED_OUT)
    assert len(locked) == 2
    assert all("user:operator.a" in event.reason for event in locked)


async def test_one_source_guessing_many_names_is_locked_out_alone(
    identity: IdentityService,
) -> None:
    await add_staff(identity, "operator.a")
    for n in range(20):
        with pytest.raises(Unauthenticated):
            await identity.logins.login(f"guess-{n}", "wrong password!", "", SOURCE)
    with pytest.raises(ResourceExhausted):
        await identity.logins.login("operator.a", PASSWORD, "", "ipv4:10.0.0.5:50000")
    result = await identity.logins.login("operator.a", PASSWORD, "", "ipv4:10.0.0.6:50000")
    assert result.tokens is not None


async def test_totp_enrolment_challenge_and_one_step_login(
    identity: IdentityService, clock: Clock
) -> None:
    staff_id = await add_staff(identity, "engineer.e")
    actor = verifier(identity).verify((await login(identity, "engineer.e")).access_token)
    secret, uri, _ = await identity.enroll_totp(staff_id, actor)
    assert uri.startswith("otpauth://totp/")
    assert "engineer.e" in uri
    with pytest.raises(InvalidArgument):
        await identity.confirm_totp(staff_id, "000000", actor)
    confirmed = await identity.confirm_totp(staff_id, totp_code(secret, clock.now), actor)
    assert confirmed.totp_enabled

    clock.advance(30)
    result = await identity.logins.login("engineer.e", PASSWORD, "", SOURCE)
    assert result.tokens is None
    assert result.challenge is not None
    with pytest.raises(Unauthenticated, match="invalid credentials"):
        await identity.logins.verify_totp(result.challenge.id, "123456", SOURCE)
    with pytest.raises(Unauthenticated, match="unknown or expired"):  # single use
        await identity.logins.verify_totp(result.challenge.id, totp_code(secret, clock.now), SOURCE)
    result = await identity.logins.login("engineer.e", PASSWORD, "", SOURCE)
    assert result.challenge is not None
    tokens = await identity.logins.verify_totp(
        result.challenge.id, totp_code(secret, clock.now), SOURCE
    )
    assert verifier(identity).verify(tokens.access_token).amr == ("pwd", "otp")
    with pytest.raises(Unauthenticated):  # the same code again: replayed
        await identity.logins.login("engineer.e", PASSWORD, totp_code(secret, clock.now), SOURCE)
    clock.advance(30)
    one_step = await identity.logins.login(
        "engineer.e", PASSWORD, totp_code(secret, clock.now), SOURCE
    )
    assert one_step.tokens is not None


async def test_a_reused_refresh_token_revokes_its_whole_session(
    identity: IdentityService, clock: Clock
) -> None:
    await add_staff(identity, "operator.a", "operator:electricity")
    first = await login(identity, "operator.a")
    clock.advance(5)
    second = await identity.sessions.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    check = verifier(identity)
    one, two = check.verify(first.access_token), check.verify(second.access_token)
    assert one.sid == two.sid
    assert one.auth_time == two.auth_time
    assert one.jti != two.jti
    assert two.allows("operator", "electricity")

    with pytest.raises(Unauthenticated, match="session is revoked"):
        await identity.sessions.refresh(first.refresh_token)
    with pytest.raises(Unauthenticated, match="session has ended"):
        await identity.sessions.refresh(second.refresh_token)
    fresh = verifier(identity)
    for token in (first.access_token, second.access_token):
        with pytest.raises(TokenError, match="revoked"):
            fresh.verify(token)
    revoked = await events(identity, EventType.TOKEN_REVOKED)
    assert {(event.token_id, event.token_expires) for event in revoked} == {
        (one.jti, one.exp.timestamp()),
        (two.jti, two.exp.timestamp()),
    }


async def test_logout_ends_the_session_and_its_access_tokens(
    identity: IdentityService,
) -> None:
    await add_staff(identity, "operator.a")
    tokens = await login(identity, "operator.a")
    await identity.sessions.logout(tokens.refresh_token)
    with pytest.raises(TokenError, match="revoked"):
        verifier(identity).verify(tokens.access_token)
    with pytest.raises(Unauthenticated):
        await identity.sessions.refresh(tokens.refresh_token)
    with pytest.raises(Unauthenticated, match="not recognised"):
        await identity.sessions.logout("never-issued")


async def test_disabling_revokes_every_token_and_stops_logins(
    identity: IdentityService, clock: Clock
) -> None:
    staff_id = await add_staff(identity, "operator.a")
    tokens = await login(identity, "operator.a")
    admin = local_operator()
    await identity.set_state(staff_id, False, "left the IOC", admin)
    with pytest.raises(TokenError, match="revoked"):
        verifier(identity).verify(tokens.access_token)
    with pytest.raises(Unauthenticated, match="invalid credentials"):
        await login(identity, "operator.a")
    (event,) = await events(identity, EventType.TOKEN_REVOKED)
    longest = identity.issuer.lifetimes.longest
    assert (event.token_id, event.principal_id) == ("*", staff_id)
    assert event.token_expires == pytest.approx(event.time + longest)
    assert event.time == pytest.approx(clock.now)
    await identity.set_state(staff_id, True, "back", admin)
    clock.advance(2)
    assert verifier(identity).verify((await login(identity, "operator.a")).access_token)


async def test_roles_are_granted_per_field_and_checked(identity: IdentityService) -> None:
    admin = local_operator()
    staff_id = await add_staff(identity, "operator.a")
    binding = RoleBinding("operator", "water_supply")
    granted = await identity.change_role(staff_id, binding, True, admin)
    assert granted.roles == {binding}
    assert (await identity.change_role(staff_id, binding, True, admin)).roles == {binding}
    assert len(await events(identity, EventType.ROLE_ASSIGNED)) == 1
    for wrong, reason in (
        (RoleBinding("identity_admin", "traffic"), "'\\*' only"),
        (RoleBinding("superuser", "*"), "unknown role"),
        (RoleBinding("viewer", "Bad Field"), "not a field id"),
    ):
        with pytest.raises(InvalidArgument, match=reason):
            await identity.change_role(staff_id, wrong, True, admin)
    await identity.change_role(staff_id, binding, False, admin)
    with pytest.raises(NotFound):
        await identity.change_role(staff_id, binding, False, admin)
    citizen = await identity.create_principal(CITIZEN, PASSWORD, "", None)
    with pytest.raises(FailedPrecondition):
        await identity.change_role(citizen.id, binding, True, admin)
    operator = verifier(identity).verify((await login(identity, "operator.a")).access_token)
    with pytest.raises(PermissionDenied):
        await identity.change_role(staff_id, binding, True, operator)
    with pytest.raises(PermissionDenied):
        await identity.get_principal(citizen.id, operator)
    assert (await identity.get_principal(staff_id, operator)).username == "operator.a"


async def test_service_tokens_are_capped_at_the_stream_retention(
    identity: IdentityService,
) -> None:
    admin = local_operator()
    device = await identity.create_principal(
        NewPrincipal(PrincipalKind.DEVICE, "cau-do/analyser-1"), "", "", admin
    )
    issued = await identity.issue_service_token(device.id, 0, ["monitoring"], admin)
    claims = TokenVerifier(identity.issuer.ring.key_set(), audiences="monitoring").verify(
        issued.token
    )
    assert claims.amr == ("svc",)
    assert claims.sid is None
    assert claims.exp.timestamp() - claims.iat.timestamp() == 30 * 24 * 3600
    with pytest.raises(InvalidArgument, match="ttl"):
        await identity.issue_service_token(device.id, 31 * 24 * 3600, [], admin)
    staff_id = await add_staff(identity, "operator.a")
    with pytest.raises(FailedPrecondition):
        await identity.issue_service_token(staff_id, 0, [], admin)
    await identity.sessions.revoke_token(issued.record.jti, "leaked", admin)
    with pytest.raises(TokenError, match="revoked"):
        TokenVerifier(
            identity.issuer.ring.key_set(),
            audiences="monitoring",
            is_revoked=identity.issuer.revoked,
        ).verify(issued.token)


async def test_keys_rotate_and_retire_after_the_longest_token(
    identity: IdentityService, clock: Clock
) -> None:
    issuer = identity.issuer
    await add_staff(identity, "operator.a")
    old_kid = issuer.ring.signing.kid
    old = await login(identity, "operator.a")
    clock.advance(issuer.rotation_seconds)
    assert await issuer.refresh_keys()
    new_kid = issuer.ring.signing.kid
    assert new_kid != old_kid
    assert [key["kid"] for key in issuer.ring.jwks()["keys"]] == [new_kid, old_kid]
    assert issuer.verifier.verify(old.access_token)  # the retired key still verifies
    assert (
        jwt.get_unverified_header((await login(identity, "operator.a")).access_token)["kid"]
        == new_kid
    )
    clock.advance(issuer.lifetimes.longest + 60)
    await issuer.refresh_keys()
    assert old_kid not in {key["kid"] for key in issuer.ring.jwks()["keys"]}


async def test_listing_pages_and_filters(identity: IdentityService) -> None:
    admin = local_operator()
    for n in range(5):
        await add_staff(identity, f"staff-{n}", f"viewer:{'traffic' if n % 2 else 'health'}")
    await identity.create_principal(CITIZEN, PASSWORD, "", None)
    names, token = [], ""
    while True:
        page = await identity.list_principals(PrincipalFilter(), 2, token, admin)
        names += [principal.username for principal in page.items]
        token = page.next_page_token or ""
        if not token:
            break
    assert names == ["nguyen.van.a", "staff-0", "staff-1", "staff-2", "staff-3", "staff-4"]
    traffic = await identity.list_principals(PrincipalFilter(field="traffic"), 10, "", admin)
    assert [p.username for p in traffic.items] == ["staff-1", "staff-3"]
    by_name = await identity.list_principals(PrincipalFilter(name_prefix="NGUYỄN"), 10, "", admin)
    assert [p.username for p in by_name.items] == ["nguyen.van.a"]
    with pytest.raises(InvalidArgument, match="page token"):
        await identity.list_principals(PrincipalFilter(), 10, "garbage", admin)


async def test_profiles_passwords_and_who_may_change_them(
    identity: IdentityService, clock: Clock
) -> None:
    admin = local_operator()
    citizen = await identity.create_principal(CITIZEN, PASSWORD, "", None)
    own = verifier(identity).verify((await login(identity, "nguyen.van.a")).access_token)
    changed = await identity.update_principal(
        citizen.id, {"display_name": "Nguyễn Văn An", "labels": {"ward": "hai-chau"}}, own
    )
    assert (changed.display_name, dict(changed.labels)) == ("Nguyễn Văn An", {"ward": "hai-chau"})
    with pytest.raises(PermissionDenied, match="assurance"):
        await identity.update_principal(
            citizen.id, {"assurance_level": AssuranceLevel.LEVEL_1}, own
        )
    with pytest.raises(InvalidArgument, match="cannot change username"):
        await identity.update_principal(citizen.id, {"username": "other"}, own)
    raised = await identity.update_principal(
        citizen.id, {"assurance_level": AssuranceLevel.LEVEL_1}, admin
    )
    assert raised.assurance is AssuranceLevel.LEVEL_1

    new_password = "a much longer passphrase"
    with pytest.raises(InvalidArgument, match="current_password"):
        await identity.set_password(citizen.id, "", new_password, own, SOURCE)
    with pytest.raises(Unauthenticated, match="current password"):
        await identity.set_password(citizen.id, "not it at all", new_password, own, SOURCE)
    with pytest.raises(InvalidArgument, match="at least 10"):
        await identity.set_password(citizen.id, PASSWORD, "short", own, SOURCE)
    await identity.set_password(citizen.id, PASSWORD, new_password, own, SOURCE)
    assert (await login(identity, "nguyen.van.a", new_password)).access_token
    await identity.set_password(citizen.id, "", PASSWORD, admin, SOURCE)  # an admin resets
    assert (await login(identity, "nguyen.van.a")).access_token
    updated = await events(identity, EventType.PRINCIPAL_UPDATED)
    assert [event.reason for event in reversed(updated)] == [
        "changed display_name, labels",
        "changed assurance_level",
        "password changed",
        "password changed",
    ]


async def test_the_audit_pages_newest_first_and_filters_by_principal_and_time(
    identity: IdentityService, clock: Clock
) -> None:
    admin = local_operator()
    staff_id = await add_staff(identity, "operator.a")
    start = clock.now
    for _ in range(3):
        clock.advance(10)
        await login(identity, "operator.a")
    seen, token = [], ""
    while True:
        where = AuditFilter(principal_id=staff_id, start=start + 1)
        page = await identity.audit(where, 2, token, admin)
        seen += page.items
        token = page.next_page_token or ""
        if not token:
            break
    assert [event.type for event in seen] == [EventType.LOGIN_SUCCEEDED] * 3
    assert [event.time for event in seen] == sorted((event.time for event in seen), reverse=True)
    operator = verifier(identity).verify((await login(identity, "operator.a")).access_token)
    with pytest.raises(PermissionDenied):
        await identity.audit(AuditFilter(), 10, "", operator)


async def test_racing_requests_leave_one_winner(
    identity: IdentityService, settings: Settings, clock: Clock
) -> None:
    outcomes = await asyncio.gather(
        *(identity.create_principal(CITIZEN, PASSWORD, "", None) for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(not isinstance(outcome, Exception) for outcome in outcomes) == 1
    assert all(isinstance(o, AlreadyExists) for o in outcomes if isinstance(o, Exception))

    tokens = await login(identity, "nguyen.van.a")
    refreshed = await asyncio.gather(
        *(identity.sessions.refresh(tokens.refresh_token) for _ in range(3)),
        return_exceptions=True,
    )
    winners = [outcome for outcome in refreshed if isinstance(outcome, TokenSet)]
    assert len(winners) <= 1
    survivor = winners[0].refresh_token if winners else tokens.refresh_token
    with pytest.raises(Unauthenticated):  # the losers saw a reuse: the session is revoked
        await identity.sessions.refresh(survivor)

    clock.advance(identity.issuer.rotation_seconds)
    async with opened(settings, clock) as replica:  # a second replica on the same store
        before = len(identity.issuer.ring.stored)
        await asyncio.gather(identity.issuer.refresh_keys(), replica.issuer.refresh_keys())
        await identity.issuer.refresh_keys()
        assert len(identity.issuer.ring.stored) == before + 1
        assert identity.issuer.ring.signing.kid == replica.issuer.ring.signing.kid
