"""The signing keys: Ed25519 key pairs kept in the store, the newest signing, the older ones
still published until every token they signed has expired.

Private keys are stored as PKCS#8 PEM. With ``identity.key_passphrase`` configured they are
encrypted with it (``BestAvailableEncryption``), so a copy of the database alone signs
nothing; without it they are protected only by the permissions of the database file or
server, which the service's README says.

The key id (``kid``) is the RFC 7638 thumbprint of the public key, as
:func:`smartcity.runtime.tokens.thumbprint` computes it, so any verifier can recompute it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from smartcity.runtime.errors import FailedPrecondition
from smartcity.runtime.tokens import ALGORITHM, KeySet, thumbprint


class KeyRingError(FailedPrecondition):
    """Stored keys that cannot be used (a wrong passphrase, a damaged key)."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    private_pem: bytes
    public_jwk: str
    created: float
    retired: float | None = None
    """When a newer key took over signing; the key is published until ``retired`` plus the
    longest token lifetime."""


def public_jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    return {
        "kty": jwk["kty"],
        "crv": jwk["crv"],
        "x": jwk["x"],
        "kid": kid,
        "use": "sig",
        "alg": ALGORITHM,
    }


class KeyRing:
    """The keys in use, decrypted once each; the newest signs."""

    def __init__(self, passphrase: bytes | None = None) -> None:
        self._passphrase = passphrase or None
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._stored: list[StoredKey] = []

    def generate(self, now: float) -> StoredKey:
        """A new key pair, ready to store."""
        key = Ed25519PrivateKey.generate()
        kid = thumbprint(key.public_key())
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(self._passphrase)
            if self._passphrase
            else serialization.NoEncryption()
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        self._private[kid] = key
        return StoredKey(kid, pem, json.dumps(public_jwk(key, kid)), now)

    def load(self, stored: Iterable[StoredKey]) -> None:
        """Use exactly ``stored`` from now on (newest first after sorting)."""
        keys = sorted(stored, key=lambda key: (key.created, key.kid), reverse=True)
        private: dict[str, Ed25519PrivateKey] = {}
        for entry in keys:
            private[entry.kid] = self._private.get(entry.kid) or self._decrypt(entry)
        self._private = private
        self._stored = keys

    def _decrypt(self, entry: StoredKey) -> Ed25519PrivateKey:
        try:
            key = serialization.load_pem_private_key(entry.private_pem, self._passphrase)
        except TypeError:
            raise KeyRingError(
                f"signing key {entry.kid} is encrypted and no identity.key_passphrase is set, "
                "or it is not encrypted and one is"
            ) from None
        except ValueError:
            raise KeyRingError(
                f"signing key {entry.kid} cannot be read: a wrong identity.key_passphrase, "
                "or a damaged key"
            ) from None
        if not isinstance(key, Ed25519PrivateKey) or thumbprint(key.public_key()) != entry.kid:
            raise KeyRingError(f"signing key {entry.kid} is not the Ed25519 key it names")
        return key

    @property
    def stored(self) -> list[StoredKey]:
        return list(self._stored)

    @property
    def signing(self) -> StoredKey | None:
        return self._stored[0] if self._stored else None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JSON Web Key Set, the signing key first."""
        return {"keys": [json.loads(entry.public_jwk) for entry in self._stored]}

    def jwks_json(self) -> str:
        return json.dumps(self.jwks(), separators=(",", ":"), sort_keys=True)

    def key_set(self) -> KeySet:
        return KeySet({kid: key.public_key() for kid, key in self._private.items()})

    def sign(self, claims: Mapping[str, Any]) -> str:
        signing = self.signing
        if signing is None:
            raise KeyRingError("no signing key is loaded")
        return jwt.encode(
            dict(claims),
            self._private[signing.kid],
            algorithm=ALGORITHM,
            headers={"kid": signing.kid, "typ": "JWT"},
        )
