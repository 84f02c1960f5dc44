"""How a process proves to NATS who it is, and how the server's refusals read.

Each principal of the platform (admin, a service, an edge agent) connects as its own NATS
user with a password. The plaintext lives in one credentials file per principal, written by
``smartcity identity nats-config`` with mode 0600; the server holds only a bcrypt hash.

Replies (request/reply, JetStream acknowledgements and API answers, pull-consumer
deliveries) arrive on inbox subjects. By default every client uses ``_INBOX.>``, so any user
allowed to subscribe there could read everybody's replies; here each user gets the prefix
``_INBOX.<user>`` (:func:`inbox_prefix`) and is allowed to subscribe under it only.

The server answers a forbidden publish or subscription with ``-ERR 'Permissions Violation
for Publish to "<subject>"'`` and keeps the connection; nats-py hands that to the error
callback. :class:`Refusals` remembers those per connection, so that the caller who was
refused gets a sentence naming the user and the subject instead of a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Literal, NamedTuple

import nats.errors
import structlog
import yaml

from smartcity.runtime.config import NatsSettings
from smartcity.runtime.errors import InvalidArgument

__all__ = [
    "INBOX_ROOT",
    "CredentialsError",
    "NatsCredentials",
    "Refusals",
    "connect_refusal",
    "inbox_prefix",
    "read_credentials_file",
    "resolve_credentials",
    "write_credentials_file",
]

INBOX_ROOT = "_INBOX"
_FILE_KEYS = frozenset({"user", "password"})
_MAX_FILE_BYTES = 64 * 1024
_REMEMBERED_REFUSALS = 256
# The server quotes the subject as Go's %q does: backslash escapes inside double quotes.
_VIOLATION = re.compile(
    r'permissions violation for (publish|subscription) to "((?:[^"\\]|\\.)*)"',
    re.IGNORECASE | re.DOTALL,
)
_AUTHORIZATION_VIOLATION = "authorization violation"

_log = structlog.stdlib.get_logger(__name__)

Action = Literal["publish", "subscribe"]


class CredentialsError(InvalidArgument):
    """Credentials that cannot be used; the message names the file and what is wrong."""


class NatsCredentials(NamedTuple):
    user: str
    password: str
    source: str
    """Where they came from (a file, or the settings), for messages."""

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return f"NatsCredentials(user={self.user!r}, password='**********', source={self.source!r})"


def inbox_prefix(user: str | None) -> str:
    """The inbox prefix of ``user``'s connection: ``_INBOX.<user>``, or ``_INBOX`` for none.

    One rule for both sides: the generated permissions allow ``user`` to subscribe to
    ``<prefix>.>`` and nothing else under ``_INBOX``, and :class:`~smartcity.runtime.bus.Bus`
    connects with the same prefix.
    """
    return INBOX_ROOT if user is None else f"{INBOX_ROOT}.{user}"


# -- credentials files -----------------------------------------------------------------------


def read_credentials_file(path: str | os.PathLike[str]) -> NatsCredentials:
    """Read a credentials file; every way it can be wrong is refused with the reason."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            data = file.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read NATS credentials: {exc.strerror}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise CredentialsError(f"{path}: not a NATS credentials file (over 64 KiB)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        # Kubernetes mounts secrets 0644 by default, so this is said, not refused.
        _log.warning(
            "nats_credentials_readable_by_others",
            file=str(path),
            mode=oct(stat.S_IMODE(mode)),
            hint=f"chmod 600 {path}",
        )
    try:
        content = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "invalid YAML"
        raise CredentialsError(f"{path}: not a NATS credentials file ({reason})") from None
    if not isinstance(content, dict):
        raise CredentialsError(f"{path}: a NATS credentials file holds `user:` and `password:`")
    unknown = sorted(str(key) for key in content if key not in _FILE_KEYS)
    if unknown:
        raise CredentialsError(f"{path}: unknown key(s) {', '.join(unknown)}")
    values: dict[str, str] = {}
    for key in sorted(_FILE_KEYS):
        value = content.get(key)
        if not isinstance(value, str) or not value:
            raise CredentialsError(f"{path}: `{key}` must be a non-empty string")
        values[key] = value
    return NatsCredentials(values["user"], values["password"], str(path))


def write_credentials_file(path: Path, user: str, password: str, *, about: str) -> None:
    """Write ``user``'s credentials to ``path`` with mode 0600, atomically.

    The file is created 0600 before any secret is written to it and then renamed over the
    old one, so neither a reader nor a crash ever sees a half-written or readable secret.
    """
    text = (
        f"# NATS credentials of {user}: {about}.\n"
        "# Secret: keep this file mode 0600. A process uses it with\n"
        f"#   SMARTCITY_NATS__CREDENTIALS_FILE={path}\n"
        + yaml.safe_dump({"user": user, "password": password}, allow_unicode=True)
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def resolve_credentials(settings: NatsSettings) -> NatsCredentials | None:
    """The credentials ``settings`` name (a file, or ``user``/``password``), or ``None``."""
    if settings.credentials_file is not None:
        return read_credentials_file(settings.credentials_file)
    if settings.user is None:
        return None
    password = settings.password.get_secret_value() if settings.password is not None else ""
    return NatsCredentials(settings.user, password, "nats.user")


# -- the server's refusals -------------------------------------------------------------------


def _who(user: str | None) -> str:
    return f"NATS user {user!r}" if user else "this NATS connection (no user)"


def connect_refusal(user: str | None, servers: str, error: BaseException) -> str | None:
    """A sentence for a server that refused to let ``user`` in, or ``None`` for other errors."""
    refused = isinstance(error, nats.errors.AuthorizationError)
    if not (refused or _AUTHORIZATION_VIOLATION in str(error).lower()):
        return None
    if not user:
        return (
            f"NATS at {servers} requires a user (authorization violation): set "
            "nats.credentials_file (SMARTCITY_NATS__CREDENTIALS_FILE) to the credentials file "
            "`smartcity identity nats-config` wrote for this process"
        )
    return (
        f"NATS at {servers} refused user {user!r} (authorization violation): the password is "
        "wrong or the server's authorization does not list this user; regenerate it with "
        "`smartcity identity nats-config` and reload the server"
    )


class Refusal(NamedTuple):
    action: Action
    subject: str


def parse_violation(message: str) -> Refusal | None:
    """The action and subject of a server's ``Permissions Violation`` error, if it is one."""
    match = _VIOLATION.search(message)
    if match is None:
        return None
    action: Action = "publish" if match.group(1).lower() == "publish" else "subscribe"
    quoted = match.group(2)
    try:
        # JSON's string escapes are the ones Go uses for printable text (\" \\ \uXXXX).
        subject = json.loads(f'"{quoted}"')
    except ValueError:
        subject = quoted  # an escape only Go has (\x..): keep the text as the server sent it
    return Refusal(action, subject)


class Refusals:
    """The permission refusals one connection received, in words that name user and subject."""

    def __init__(self, user: str | None) -> None:
        self.user = user
        self._recent: OrderedDict[Refusal, str] = OrderedDict()

    def describe(self, action: Action, subject: str) -> str:
        verb = "publish to" if action == "publish" else "subscribe to"
        return (
            f"{_who(self.user)} may not {verb} {subject!r}: the server refused it "
            "(permissions violation); permissions come from `smartcity identity nats-config`"
        )

    def record(self, error: BaseException | str) -> str | None:
        """Note ``error`` if it is a permission refusal; the sentence for it, else ``None``."""
        refusal = parse_violation(str(error))
        if refusal is None:
            return None
        sentence = self.describe(*refusal)
        refusal = Refusal(refusal.action, refusal.subject.lower())
        self._recent[refusal] = sentence
        self._recent.move_to_end(refusal)
        while len(self._recent) > _REMEMBERED_REFUSALS:
            self._recent.popitem(last=False)
        return sentence

    def take(self, action: Action, subject: str) -> str | None:
        """The sentence for a refusal of ``action`` on ``subject`` since the last take."""
        # nats-py lower-cases the server's error text, subject included.
        if self._recent.pop(Refusal(action, subject.lower()), None) is None:
            return None
        return self.describe(action, subject)
