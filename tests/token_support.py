"""Tokens as identity signs them, for tests of everything that verifies them.

Test-only: production code never signs outside the identity service."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from smartcity.runtime.tokens import KeySet

ISSUER = "smartcity-identity"


@dataclass
class Signer:
    """Signs tokens as identity would: Ed25519, ``kid`` in the header, the claims of
    identity.proto."""

    kid: str | None = "key-1"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "p-operator-1",
            "aud": ["smartcity"],
            "iat": now,
            "exp": now + 900,
            "jti": uuid.uuid4().hex,
            "kind": "staff",
            "roles": ["operator:electricity", "viewer:water_supply"],
            "acr": "vneid:2",
            "amr": ["pwd", "otp"],
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def sign(self, **overrides: Any) -> str:
        headers = {"kid": self.kid} if self.kid is not None else {}
        return jwt.encode(self.claims(**overrides), self.key, algorithm="EdDSA", headers=headers)

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        jwk = OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def key_set(self) -> KeySet:
        return KeySet.from_jwks({"keys": [self.jwk()]})

    def jwks_json(self) -> str:
        return json.dumps({"keys": [self.jwk()]})
