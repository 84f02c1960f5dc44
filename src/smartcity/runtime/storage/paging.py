"""Opaque page tokens for keyset paging: a token names the key a listing resumes after, so
pages stay stable while rows are added and there are no offsets to drift."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from smartcity.runtime.storage.errors import InvalidQuery


def encode_page_token(kind: str, key: Sequence[str]) -> str:
    """A token that resumes a listing of ``kind`` after ``key``."""
    raw = json.dumps([kind, *key], ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str | None, kind: str, arity: int) -> tuple[str, ...] | None:
    """The key a token from :func:`encode_page_token` resumes after; None for no token.
    Anything else is :class:`~.errors.InvalidQuery`."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidQuery(
            f"invalid page token {token[:40]!r}: not a token this service issued"
        ) from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != arity + 1
        or not all(isinstance(part, str) for part in decoded)
    ) or decoded[0] != kind:
        raise InvalidQuery(
            f"invalid page token {token[:40]!r}: it does not belong to this kind of listing"
        )
    return tuple(decoded[1:])
