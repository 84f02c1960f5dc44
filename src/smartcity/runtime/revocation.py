"""Tokens refused before their expiry: revoked token ids and disabled principals.

A :class:`RevocationList` is the ``is_revoked`` hook of a
:class:`smartcity.runtime.tokens.TokenVerifier`; in ``identity`` mode
:mod:`smartcity.runtime.trust` feeds it from identity's events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from smartcity.runtime.claims import Claims


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
