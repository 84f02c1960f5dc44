"""Passwords: argon2id hashes (argon2-cffi) and the policy a new password must meet.

Hashing costs tens of milliseconds of CPU by design, so it runs in a worker thread and never
on the event loop. A stored hash made with other parameters than the configured ones is
replaced at the next successful login (``check_needs_rehash``), so raising the cost takes
effect as people log in.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from smartcity.services.identity.model import MAX_PASSWORD, refuse

COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890",
        "12345678910",
        "password",
        "password1",
        "password123",
        "passw0rd",
        "qwertyuiop",
        "qwerty123456",
        "iloveyou",
        "admin123456",
        "administrator",
        "letmein",
        "welcome123",
        "changeme",
        "111111111111",
        "000000000000",
        "abc123456789",
        "matkhau",
        "matkhau123",
        "danang",
        "danang123",
        "danang2025",
        "smartcity",
        "smartcity123",
        "vietnam",
        "vietnam123",
        "anhyeuem",
        "anhyeuem123",
        "123456789a",
    }
)
"""Passwords too common to allow whatever their length, compared case-insensitively."""


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = 10

    def check(self, password: str, username: str) -> None:
        """Every way ``password`` falls short, in one :class:`InvalidArgument`."""
        problems = []
        if len(password) < self.min_length:
            problems.append(f"the password must have at least {self.min_length} characters")
        if len(password) > MAX_PASSWORD:
            problems.append(f"the password must have at most {MAX_PASSWORD} characters")
        if not password.strip():
            problems.append("the password must not be only spaces")
        lowered = password.casefold()
        name = username.casefold()
        if name and (name in lowered or lowered in name):
            problems.append("the password must not contain the username")
        if lowered in COMMON_PASSWORDS or lowered.rstrip("0123456789!.") in COMMON_PASSWORDS:
            problems.append("the password is one of the most common passwords")
        refuse(problems)


class Passwords:
    """argon2id hashing with the configured cost; ``None`` parameters keep argon2-cffi's
    defaults (RFC 9106's second recommended option), which is what production uses."""

    def __init__(
        self,
        *,
        time_cost: int | None = None,
        memory_cost: int | None = None,
        parallelism: int | None = None,
    ) -> None:
        options = {
            "time_cost": time_cost,
            "memory_cost": memory_cost,
            "parallelism": parallelism,
        }
        self._hasher = PasswordHasher(**{k: v for k, v in options.items() if v is not None})
        # Verified against when the username is unknown, so that an unknown name takes as
        # long to refuse as a wrong password and cannot be told apart by timing.
        self._decoy = self._hasher.hash("decoy password, never valid")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; a missing or broken hash matches nothing
        (after the same work as a real check)."""
        return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._decoy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True
