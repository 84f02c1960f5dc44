"""Failures that domain code reports to its callers.

Services raise these plain exceptions and stay free of any transport: the gRPC layer
(:mod:`smartcity.runtime.interceptors`) turns each into its status code, and the message is
what the caller reads. Write messages for the caller, therefore: name what was wrong with
their request, never internals. Anything else a servicer raises is an internal error whose
text is logged but not sent.

The names are those of the gRPC status codes they stand for, without an ``Error`` suffix.
"""

# ruff: noqa: N818

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "DomainError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]


class DomainError(Exception):
    """Base of the failures a caller is allowed to see, with their message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The named thing (record, device, principal, alert) does not exist."""


class InvalidArgument(DomainError):
    """The request is wrong whatever the state of the system; retrying it cannot help."""


class AlreadyExists(DomainError):
    """Creating something whose identity is already taken."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


class Unauthenticated(DomainError):
    """The caller could not be identified: no token, or one that is expired or forged."""


class FailedPrecondition(DomainError):
    """The system is not in the state the request needs (e.g. acknowledging a resolved
    alert); the caller should not retry until that state has changed."""


class ResourceExhausted(DomainError):
    """A quota or size limit was hit."""


class Unavailable(DomainError):
    """A dependency (the bus, storage) is down for now; the caller may retry later."""
