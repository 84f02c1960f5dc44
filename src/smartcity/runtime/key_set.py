"""The public keys a token may be signed with: Ed25519 only, each named by its key id.

A :class:`KeySet` comes from identity's JSON Web Key Set (RFC 7517) or from PEM files, the
way an agent is given the issuer's key before identity runs; a PEM key without an id is
named by its RFC 7638 thumbprint (:func:`thumbprint`), which identity may sign with as
``kid``. Where a process takes its keys from is the ``auth`` section
(:mod:`smartcity.runtime.auth_settings`) and, in ``identity`` mode,
:mod:`smartcity.runtime.trust`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
"""The only signature algorithm accepted (RFC 8037, Ed25519)."""


class KeySetError(ValueError):
    """Public keys that cannot be used to verify tokens; the message names the key and why."""


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
