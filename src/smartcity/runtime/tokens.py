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
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm
from pydantic import BaseModel, ConfigDict, Field, field_validator

from smartcity.runtime.errors import Unauthenticated

ALGORITHM = "EdDSA"
"""The only signature algorithm accepted (RFC 8037, Ed25519)."""
DEFAULT_ISSUER = "smartcity-identity"
PLATFORM_AUDIENCE = "smartcity"
"""The audience of a token valid for every service (identity.proto)."""
DEFAULT_LEEWAY_SECONDS = 30.0
MAX_TOKEN_BYTES = 16 * 1024
"""Longer than any token identity issues; a bigger one is refused before it is parsed."""
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp", "jti")
VERIFIED_CACHE_SIZE = 10_000
"""Verified tokens remembered per verifier (least recently used forgotten first)."""

WILDCARD_FIELD = "*"


class TokenError(Unauthenticated):
    """A token that does not identify anyone; the message says why, never what it contained."""


class UnknownKeyError(TokenError):
    """The token names a key id this process does not know: forged, or signed with a key
    identity has just rotated in and whose announcement has not arrived yet."""


class KeySetError(ValueError):
    """Public keys that cannot be used to verify tokens; the message names the key and why."""


# -- roles -----------------------------------------------------------------------------------


class Role(StrEnum):
    """The roles of identity.proto. ``viewer`` < ``operator`` < ``engineer``; the other two
    stand apart: a records officer is not an operator, and administering principals grants
    nothing in the fields."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    RECORDS_OFFICER = "records_officer"
    IDENTITY_ADMIN = "identity_admin"


_IMPLIED: Mapping[str, frozenset[str]] = {
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.ENGINEER: frozenset({Role.ENGINEER, Role.OPERATOR, Role.VIEWER}),
    Role.RECORDS_OFFICER: frozenset({Role.RECORDS_OFFICER}),
    Role.IDENTITY_ADMIN: frozenset({Role.IDENTITY_ADMIN}),
}


def implied_roles(role: str) -> frozenset[str]:
    """Every role that holding ``role`` grants, itself included. A role this version does not
    know grants only itself, so that a newer identity service can add roles safely."""
    return _IMPLIED.get(role, frozenset({role}))


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """A role on one field, or on every field when ``field`` is ``*``."""

    role: str
    field: str

    @classmethod
    def parse(cls, text: str) -> RoleBinding:
        """``operator:electricity`` → ``RoleBinding("operator", "electricity")``."""
        role, colon, field = text.partition(":")
        if not colon or not role or not field or ":" in field or text != text.strip():
            raise ValueError(f"{text[:80]!r} is not a role binding of the form <role>:<field>")
        return cls(role, field)

    def __str__(self) -> str:
        return f"{self.role}:{self.field}"

    def grants(self, role: str, field: str) -> bool:
        """Whether this binding gives ``role`` on ``field``. Asking for ``*`` (every field)
        is answered only by a ``*`` binding."""
        return role in implied_roles(self.role) and self.field in (field, WILDCARD_FIELD)


class PrincipalKind(StrEnum):
    CITIZEN = "citizen"
    STAFF = "staff"
    DEVICE = "device"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its bearer."""

    sub: str
    kind: PrincipalKind
    roles: frozenset[RoleBinding]
    iss: str
    aud: tuple[str, ...]
    iat: datetime
    exp: datetime
    jti: str
    acr: str | None = None
    """eID assurance (``vneid:1``, ``vneid:2``); ``None`` without eID verification."""
    amr: tuple[str, ...] = ()
    """How the principal authenticated (RFC 8176): ``pwd``, ``otp``, ``svc``."""
    sid: str | None = None
    """The login session the token belongs to; ``None`` for service tokens."""
    auth_time: datetime | None = None
    """When the principal authenticated for this session (OpenID Connect ``auth_time``); a
    refresh keeps it, so that a step-up check sees how recent the login really is."""

    def allows(self, role: str, field: str) -> bool:
        """Whether the bearer holds ``role`` (or a role above it) on ``field``."""
        return any(binding.grants(role, field) for binding in self.roles)


# -- keys ------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint of ``key``: a key id derived from the key itself, used for
    a PEM key configured without one (identity may sign with it as ``kid``)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


class KeySet(Mapping[str, Ed25519PublicKey]):
    """The Ed25519 public keys that may have signed a token, by key id. Immutable."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        if not keys:
            raise KeySetError("a key set needs at least one public key")
        for kid, key in keys.items():
            if not isinstance(key, Ed25519PublicKey):
                raise KeySetError(f"key {kid!r} is not an Ed25519 public key")
        self._keys = dict(keys)

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeySet({sorted(self._keys)})"

    @classmethod
    def empty(cls) -> KeySet:
        """No key at all: what a process holds before identity's key set has arrived, and
        which verifies nothing."""
        keys = cls.__new__(cls)
        keys._keys = {}
        return keys

    @classmethod
    def merge(cls, *sets: KeySet) -> KeySet:
        """One set from several (a JWKS and extra PEM keys); a key id used twice is refused."""
        merged: dict[str, Ed25519PublicKey] = {}
        for keys in sets:
            for kid, key in keys.items():
                if kid in merged:
                    raise KeySetError(f"key id {kid!r} is configured twice")
                merged[kid] = key
        return cls(merged)

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any] | str | bytes, source: str = "JWKS") -> KeySet:
        """Keys of a JSON Web Key Set (RFC 7517), as identity's ``GetJwks`` returns it.

        Keys of another type or curve are skipped, as RFC 7517 asks of keys an implementation
        does not understand; an Ed25519 key that is broken, lacks a ``kid`` or carries a
        private part is an error, and so is a set with no usable key.
        """
        if isinstance(document, str | bytes):
            try:
                document = json.loads(document)
            except (ValueError, UnicodeDecodeError) as exc:
                raise KeySetError(f"{source}: not JSON: {exc}") from None
        if not isinstance(document, Mapping):
            raise KeySetError(f"{source}: a JWKS is a JSON object with a 'keys' list")
        entries = document.get("keys")
        if not isinstance(entries, list) or not entries:
            raise KeySetError(f"{source}: a JWKS needs a non-empty 'keys' list")
        keys: dict[str, Ed25519PublicKey] = {}
        skipped: list[str] = []
        for index, entry in enumerate(entries):
            where = f"{source}: keys[{index}]"
            if not isinstance(entry, Mapping):
                raise KeySetError(f"{where}: a key is a JSON object")
            if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
                skipped.append(f"{entry.get('kty')}/{entry.get('crv')}")
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or not kid:
                raise KeySetError(f"{where}: the key has no 'kid'; tokens name their key by it")
            where = f"{source}: key {kid!r}"
            if "d" in entry:
                raise KeySetError(
                    f"{where} holds a private key ('d'); a key set must hold public keys only"
                )
            if entry.get("alg", ALGORITHM) != ALGORITHM:
                raise KeySetError(f"{where}: alg {entry.get('alg')!r} is not {ALGORITHM}")
            if entry.get("use", "sig") != "sig":
                raise KeySetError(f"{where}: use {entry.get('use')!r} is not 'sig'")
            if kid in keys:
                raise KeySetError(f"{where} is listed twice")
            try:
                key = OKPAlgorithm.from_jwk(dict(entry))
            except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
                raise KeySetError(f"{where}: not a valid Ed25519 public key: {exc}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise KeySetError(f"{where}: not an Ed25519 public key")
            keys[kid] = key
        if not keys:
            kinds = ", ".join(sorted(set(skipped)))
            raise KeySetError(f"{source}: no Ed25519 (OKP) signing key in the set (found {kinds})")
        return cls(keys)

    @classmethod
    def from_jwks_file(cls, path: str | Path) -> KeySet:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeySetError(f"{path}: cannot read the key set: {exc.strerror}") from None
        return cls.from_jwks(data, str(path))

    @classmethod
    def from_pem(cls, pem: str | bytes, kid: str | None = None, source: str = "PEM") -> KeySet:
        """One Ed25519 public key in PEM (``-----BEGIN PUBLIC KEY-----``). Without ``kid``
        its RFC 7638 thumbprint names it."""
        data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise KeySetError(f"{source}: not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeySetError(
                f"{source}: not an Ed25519 public key; tokens are signed with Ed25519"
            )
        if kid is not None and not kid:
            raise KeySetError(f"{source}: kid must not be empty")
        return cls({kid or thumbprint(key): key})

    @classmethod
    def from_pem_file(cls, path: str | Path, kid: str | None = None) -> KeySet:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KeySetError(f"{path}: cannot read the public key: {exc.strerror}") from None
        return cls.from_pem(data, kid, str(path))


# -- configuration ---------------------------------------------------------------------------


class PemKeySettings(BaseModel):
    """A public key file; ``kid`` is the key id tokens name it by (its thumbprint if unset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path
    kid: str | None = None


class AuthMode(StrEnum):
    OFF = "off"
    """No token is asked for: every caller is trusted. For a laptop, never for a city."""
    KEYS = "keys"
    """Tokens verified with the key files configured here."""
    IDENTITY = "identity"
    """Tokens verified with the key set identity publishes on the IDENTITY stream, and
    refused once identity announces their revocation."""


class AuthSettings(BaseModel):
    """How a process verifies access tokens.

    ``mode`` says where the keys come from; unset, it is ``keys`` when key files are
    configured and ``off`` otherwise. ``jwks_file`` is identity's published key set;
    ``public_keys`` are PEM files, for agents deployed before identity exists or for keys
    handed over out of band. ``audiences`` are the ``aud`` values this process accepts: its
    own service name and ``smartcity``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: AuthMode | None = None
    jwks_file: Path | None = None
    public_keys: list[PemKeySettings] = Field(default_factory=list)
    issuer: str = DEFAULT_ISSUER
    audiences: list[str] = Field(default_factory=lambda: [PLATFORM_AUDIENCE], min_length=1)
    leeway_seconds: float = Field(default=DEFAULT_LEEWAY_SECONDS, ge=0, le=300)

    @field_validator("public_keys", mode="before")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        """Accept a bare path for a key without an explicit id."""
        if isinstance(value, list):
            return [{"file": item} if isinstance(item, str | Path) else item for item in value]
        return value

    @field_validator("audiences")
    @classmethod
    def _audiences(cls, value: list[str]) -> list[str]:
        if any(not audience.strip() for audience in value):
            raise ValueError("an audience must not be empty")
        return value

    @property
    def resolved_mode(self) -> AuthMode:
        if self.mode is not None:
            return self.mode
        return AuthMode.KEYS if self.jwks_file or self.public_keys else AuthMode.OFF

    def key_set(self) -> KeySet:
        """The configured keys, read from their files now."""
        sets = [KeySet.from_jwks_file(self.jwks_file)] if self.jwks_file else []
        sets += [KeySet.from_pem_file(key.file, key.kid) for key in self.public_keys]
        if not sets:
            raise KeySetError(
                "no public key to verify tokens with: set auth.jwks_file or auth.public_keys"
            )
        return KeySet.merge(*sets)


# -- revocation ------------------------------------------------------------------------------


class RevocationList:
    """Tokens revoked before their expiry: single token ids, and every token of a principal
    issued before a moment (a disabled account). Each entry is kept until the tokens it covers
    have expired, after which they are refused as expired anyway. Callable with a token's
    claims, to serve as ``is_revoked``; fed from identity's events. Safe to use from several
    threads."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._until: dict[str, float] = {}
        self._subjects: dict[str, tuple[float, float]] = {}  # sub -> (issued before, until)
        self._clock = clock
        self._lock = threading.Lock()

    def revoke(self, jti: str, until: float) -> None:
        """Refuse ``jti`` until the Unix time ``until`` (the token's own expiry)."""
        with self._lock:
            self._until[jti] = max(until, self._until.get(jti, until))

    def revoke_subject(self, sub: str, issued_before: float, until: float) -> None:
        """Refuse every token of principal ``sub`` issued before ``issued_before``, until the
        Unix time ``until`` (when the longest-lived of them has expired)."""
        with self._lock:
            before, kept = self._subjects.get(sub, (issued_before, until))
            self._subjects[sub] = (max(before, issued_before), max(kept, until))

    def __call__(self, claims: Claims) -> bool:
        now = self._clock()
        with self._lock:
            until = self._until.get(claims.jti)
            if until is not None:
                if until > now:
                    return True
                del self._until[claims.jti]
            entry = self._subjects.get(claims.sub)
            if entry is not None:
                before, kept = entry
                if kept <= now:
                    del self._subjects[claims.sub]
                elif claims.iat.timestamp() < before:
                    return True
            return False

    def __len__(self) -> int:
        now = self._clock()
        with self._lock:
            for jti in [jti for jti, until in self._until.items() if until <= now]:
                del self._until[jti]
            for sub in [sub for sub, (_, kept) in self._subjects.items() if kept <= now]:
                del self._subjects[sub]
            return len(self._until) + len(self._subjects)


# -- verification ----------------------------------------------------------------------------


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


def role_bindings(texts: Iterable[str]) -> frozenset[RoleBinding]:
    """Parse ``<role>:<field>`` strings; raises ``ValueError`` naming the first bad one."""
    return frozenset(RoleBinding.parse(text) for text in texts)
