"""The ``auth`` section: how a process verifies access tokens, and with which keys.

``mode`` says where the keys come from (files here, or identity's announcements read by
:mod:`smartcity.runtime.trust`); ``issuer``, ``audiences`` and ``leeway_seconds`` are what
:class:`smartcity.runtime.tokens.TokenVerifier` checks a token against.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from smartcity.runtime.key_set import KeySet, KeySetError

DEFAULT_ISSUER = "smartcity-identity"
PLATFORM_AUDIENCE = "smartcity"
"""The audience of a token valid for every service (identity.proto)."""
DEFAULT_LEEWAY_SECONDS = 30.0


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
