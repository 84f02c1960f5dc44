"""Access tokens: the one place where the platform decides who is calling and what they may do.

The identity service signs JWTs with Ed25519 (``alg: EdDSA``) and publishes its public keys
as a JSON Web Key Set; every service and agent verifies tokens locally with
:class:`TokenVerifier`, so that no request waits on identity and identity being down stops
nobody who already holds a token. Until identity runs, an agent is given the issuer's public
key as a PEM file instead; the checks are the same.

What is checked, and why it is not configurable:

* The algorithm is EdDSA and nothing else, whatever the token's header says. Accepting the
  header's ``alg`` is how ``alg: none`` tokens and the HS256 "public key as HMAC secret"
  forgery get through verifiers; the key set holds Ed25519 keys only, so it cannot be
  reinterpreted as anything else.
* The key is chosen by the token's ``kid`` among the configured keys; an unknown ``kid`` is
  refused rather than tried against every key. A token without ``kid`` is accepted only when
  exactly one key is configured (a single PEM key before identity exists).
* ``iss``, ``sub``, ``aud``, ``iat``, ``exp`` and ``jti`` must be present, ``aud`` must name
  one of the audiences this process accepts, and the token must be within its lifetime give
  or take ``leeway`` seconds of clock skew. ``jti`` is required because a token that cannot be
  named cannot be revoked.
* A revocation hook, when given, is asked about the token's claims after the signature is
  known to be good, so that forged ids never reach it.

A token verified once is remembered (by its exact text, up to :data:`VERIFIED_CACHE_SIZE`
tokens) until it expires: a client presents the same access token on every call for its
whole lifetime, and checking an Ed25519 signature costs far more than the rest of a call. A
remembered token is still refused once it expires or is revoked, and a key set change forgets
everything, so that a key identity withdrew verifies nothing any more.

Error messages say what was wrong in a caller's words ("token expired", "signature
invalid") and never contain the token: tokens are bearer credentials, and messages end up in
logs and audit records.

What a verified token says (:class:`Claims`, roles) is in :mod:`smartcity.runtime.claims`, the
keys in :mod:`smartcity.runtime.key_set`, the ``auth`` section in
:mod:`smartcity.runtime.auth_settings` and the revocations in
:mod:`smartcity.runtime.revocation`; every name is importable from here too.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from smartcity.runtime.auth_settings import (
    DEFAULT_ISSUER,
    DEFAULT_LEEWAY_SECONDS,
    PLATFORM_AUDIENCE,
    AuthMode,
    AuthSettings,
    PemKeySettings,
)
from smartcity.runtime.claims import (
    WILDCARD_FIELD,
    Claims,
    PrincipalKind,
    Role,
    RoleBinding,
    implied_roles,
    role_bindings,
)
from smartcity.runtime.errors import Unauthenticated
from smartcity.runtime.key_set import ALGORITHM, KeySet, KeySetError, thumbprint
from smartcity.runtime.revocation import RevocationList

__all__ = [
    "ALGORITHM",
    "DEFAULT_ISSUER",
    "DEFAULT_LEEWAY_SECONDS",
    "MAX_TOKEN_BYTES",
    "PLATFORM_AUDIENCE",
    "REQUIRED_CLAIMS",
    "VERIFIED_CACHE_SIZE",
    "WILDCARD_FIELD",
    "AuthMode",
    "AuthSettings",
    "Claims",
    "KeySet",
    "KeySetError",
    "PemKeySettings",
    "PrincipalKind",
    "RevocationList",
    "Role",
    "RoleBinding",
    "TokenError",
    "TokenVerifier",
    "UnknownKeyError",
    "implied_roles",
    "role_bindings",
    "thumbprint",
]

MAX_TOKEN_BYTES = 16 * 1024
"""Longer than any token identity issues; a bigger one is refused before it is parsed."""
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp", "jti")
VERIFIED_CACHE_SIZE = 10_000
"""Verified tokens remembered per verifier (least recently used forgotten first)."""


class TokenError(Unauthenticated):
    """A token that does not identify anyone; the message says why, never what it contained."""


class UnknownKeyError(TokenError):
    """The token names a key id this process does not know: forged, or signed with a key
    identity has just rotated in and whose announcement has not arrived yet."""


def _shown(value: object) -> str:
    """An attacker-chosen header value, bounded before it reaches a message."""
    text = repr(value)
    return text if len(text) <= 66 else text[:63] + "...'"


class TokenVerifier:
    """Verifies access tokens against a key set; see the module's docstring for the rules.

    ``audiences`` are the ``aud`` values accepted (any one suffices); ``is_revoked`` is asked
    about the claims of each otherwise valid token.
    """

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str = DEFAULT_ISSUER,
        audiences: str | Sequence[str] = (PLATFORM_AUDIENCE,),
        leeway: float = DEFAULT_LEEWAY_SECONDS,
        is_revoked: Callable[[Claims], bool] | None = None,
    ) -> None:
        if not isinstance(keys, KeySet):
            raise TypeError("keys must be a KeySet")
        audiences = (audiences,) if isinstance(audiences, str) else tuple(audiences)
        if not audiences or any(not audience for audience in audiences):
            raise ValueError("at least one non-empty audience is needed")
        if not issuer:
            raise ValueError("issuer must not be empty")
        if leeway < 0:
            raise ValueError("leeway must not be negative")
        self._keys = keys
        self.issuer = issuer
        self.audiences = audiences
        self.leeway = leeway
        self._is_revoked = is_revoked
        self._verified: OrderedDict[str, tuple[Claims, float]] = OrderedDict()
        self._verified_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, *, is_revoked: Callable[[Claims], bool] | None = None
    ) -> Self:
        return cls(
            settings.key_set(),
            issuer=settings.issuer,
            audiences=settings.audiences,
            leeway=settings.leeway_seconds,
            is_revoked=is_revoked,
        )

    @property
    def keys(self) -> KeySet:
        return self._keys

    def replace_keys(self, keys: KeySet) -> None:
        """Swap in a new key set (identity rotated its keys); takes effect for the next token."""
        if not isinstance(keys, KeySet):
            raise TypeError("keys must be a KeySet")
        self._keys = keys
        with self._verified_lock:
            self._verified.clear()

    def revoked(self, claims: Claims) -> bool:
        """Whether the revocation hook refuses ``claims`` now (a long stream asks again)."""
        return self._is_revoked is not None and self._is_revoked(claims)

    def verify(self, token: str) -> Claims:
        """The claims of ``token``, or :class:`TokenError` saying why it is not accepted."""
        if not isinstance(token, str) or not token.strip():
            raise TokenError("no token")
        token = token.strip()
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError(f"token too large (over {MAX_TOKEN_BYTES} bytes)")
        with self._verified_lock:
            known = self._verified.get(token)
            if known is not None:
                self._verified.move_to_end(token)
        if known is not None:
            claims, expires = known
            if time.time() >= expires:
                with self._verified_lock:
                    self._verified.pop(token, None)
                raise TokenError("token expired")
            if self.revoked(claims):
                raise TokenError(f"token revoked (jti {_shown(claims.jti)})")
            return claims
        claims = self._verify_signed(token)
        with self._verified_lock:
            self._verified[token] = (claims, claims.exp.timestamp() + self.leeway)
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return claims

    def _verify_signed(self, token: str) -> Claims:
        key = self._key_for(token)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=list(self.audiences),
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token not yet valid (issued or valid from a future time)") from None
        except jwt.InvalidSignatureError:
            raise TokenError("signature invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            accepted = ", ".join(self.audiences)
            raise TokenError(f"wrong audience: this service accepts {accepted}") from None
        except jwt.InvalidIssuerError:
            raise TokenError(f"wrong issuer: only {self.issuer} is trusted") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError(f"algorithm not accepted: only {ALGORITHM}") from None
        except jwt.DecodeError as exc:
            raise TokenError(f"malformed token: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        claims = _claims(payload)
        if self.revoked(claims):
            raise TokenError(f"token revoked (jti {_shown(claims.jti)})")
        return claims

    def _key_for(self, token: str) -> Ed25519PublicKey:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenError(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise TokenError(f"algorithm {_shown(alg)} not accepted: only {ALGORITHM}")
        kid = header.get("kid")
        if kid is None:
            if len(self._keys) == 1:
                return next(iter(self._keys.values()))
            raise TokenError(f"token names no key id (kid) and {len(self._keys)} keys are trusted")
        if not isinstance(kid, str):
            raise TokenError(f"malformed key id {_shown(kid)}")
        if kid not in self._keys:
            raise UnknownKeyError(f"unknown key id {_shown(kid)}")
        return self._keys[kid]


def _strings(payload: Mapping[str, Any], claim: str) -> list[str]:
    value = payload.get(claim, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or any(not isinstance(item, str) for item in value):
        raise TokenError(f"malformed {claim!r} claim: a list of strings is expected")
    return value


def _time(payload: Mapping[str, Any], claim: str) -> datetime:
    value = payload[claim]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"malformed {claim!r} claim: a number of seconds is expected")
    return datetime.fromtimestamp(value, UTC)


def _claims(payload: Mapping[str, Any]) -> Claims:
    sub, jti = payload["sub"], payload["jti"]
    if not isinstance(sub, str) or not sub:
        raise TokenError("malformed 'sub' claim: a principal id is expected")
    if not isinstance(jti, str) or not jti:
        raise TokenError("malformed 'jti' claim: a token id is expected")
    kind_value = payload.get("kind")
    try:
        kind = PrincipalKind(kind_value)
    except ValueError:
        known = ", ".join(kind.value for kind in PrincipalKind)
        raise TokenError(f"token 'kind' {_shown(kind_value)} is not one of {known}") from None
    try:
        roles = role_bindings(_strings(payload, "roles"))
    except ValueError as exc:
        raise TokenError(f"malformed 'roles' claim: {exc}") from None
    acr = payload.get("acr")
    if acr is not None and not isinstance(acr, str):
        raise TokenError("malformed 'acr' claim: a string is expected")
    sid = payload.get("sid")
    if sid is not None and (not isinstance(sid, str) or not sid):
        raise TokenError("malformed 'sid' claim: a session id is expected")
    auth_time = _time(payload, "auth_time") if payload.get("auth_time") is not None else None
    return Claims(
        sub=sub,
        kind=kind,
        roles=roles,
        iss=payload["iss"],
        aud=tuple(_strings(payload, "aud")),
        iat=_time(payload, "iat"),
        exp=_time(payload, "exp"),
        jti=jti,
        acr=acr,
        amr=tuple(_strings(payload, "amr")),
        sid=sid,
        auth_time=auth_time,
    )
