"""Storage failures, told apart by class so that callers can answer each rightly:
:class:`InvalidQuery` (the request is wrong, whatever the database holds),
:class:`StoreUnavailable` (the database cannot do it now; a retry later may succeed) and any
other :class:`StoreError` (the database refused this data or this configuration; the same call
fails the same way again)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit


class StoreError(Exception):
    """Storage cannot do what was asked; the message says why (and never holds a password).

    Raised as such when retrying cannot help: the database refused this data (a constraint,
    a value it cannot hold), a migration or the configuration is wrong."""


class InvalidQuery(StoreError):  # noqa: N818 - named for what the caller did
    """The request is wrong whatever the database holds: a page token this service did not
    issue, a page size out of bounds, an argument out of range (gRPC ``INVALID_ARGUMENT``)."""


class StoreUnavailable(StoreError):  # noqa: N818 - a state, like runtime.errors.Unavailable
    """The database cannot do it now and a retry later may succeed: the connection was
    refused, lost or timed out, the server is starting, shutting down or out of resources,
    the file is locked by another process, the disk is full or failing, a transaction lost
    to a concurrent one more often than retried, or the store is not open (gRPC
    ``UNAVAILABLE``)."""


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what it was raised from or while handling, and so on: an error raised
    while cleaning up after an outage (a rollback on a connection that was just lost) is
    told apart by the outage beneath it."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split(":", 1)[0] + "://(unparsable URL)"
    if not password:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
