"""The plan as nats-server configuration, and the credentials files that go with it.

:func:`write_authorization` writes into one folder:

* ``authorization.conf``: an ``authorization { users = [...] }`` block for nats-server,
  included from its configuration file (``include "authorization.conf"``) or loaded alone
  (``nats-server -c authorization.conf``, what ``smartcity nats --auth`` does). It holds
  only bcrypt hashes, which nats-server checks itself.
* ``credentials/<user>.yaml``: each principal's user and plaintext password, mode 0600.

Run again (for a new agent), it keeps the password of every principal whose credentials file
is already there, so only the new ones need to be handed out; ``rotate=True`` makes new
passwords for all.

The configuration syntax quotes every string and escapes only what nats-server's parser
knows (``\\\\`` and ``\\"``); names with control characters never get this far (they are
refused as subject tokens).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from smartcity.runtime.nats_auth.credentials import (
    CredentialsError,
    read_credentials_file,
    write_credentials_file,
)
from smartcity.runtime.nats_auth.plan import Principal

__all__ = [
    "AUTHORIZATION_FILE",
    "CREDENTIALS_DIR",
    "DEFAULT_BCRYPT_ROUNDS",
    "WrittenAuthorization",
    "credentials_path",
    "render_authorization",
    "write_authorization",
]

AUTHORIZATION_FILE = "authorization.conf"
CREDENTIALS_DIR = "credentials"
DEFAULT_BCRYPT_ROUNDS = 4
"""bcrypt's lowest cost, on purpose. Its work factor slows the guessing of passwords people
choose; these are 256 random bits, which no work factor makes more or less guessable. The
server, though, pays the cost at every connection: about 4 ms at cost 4 against 450 ms at
cost 11 (what ``nats server passwd`` uses) on a two-core machine, which for a thousand agents
reconnecting after a NATS restart is the difference between seconds and minutes of CPU."""

_PASSWORD_BYTES = 32  # 43 URL-safe characters, well under bcrypt's 72-byte limit
_MIN_KEPT_PASSWORD = 32
"""A password found in a credentials file is kept only if it could be one of ours: a
shorter one (typed by hand) is replaced, since the low cost above assumes random ones."""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    return " ".join(text.split())


def _list(items: Sequence[str], indent: str) -> str:
    inner = "".join(f"{indent}  {_quote(item)}\n" for item in items)
    return f"[\n{inner}{indent}]"


def hash_password(password: str, rounds: int = DEFAULT_BCRYPT_ROUNDS) -> str:
    """A ``$2a$`` bcrypt hash, the variant every nats-server version accepts."""
    salt = bcrypt.gensalt(rounds=rounds, prefix=b"2a")
    return bcrypt.hashpw(password.encode("utf-8"), salt).decode("ascii")


def render_authorization(users: Sequence[tuple[Principal, str]]) -> str:
    """The ``authorization`` block for ``(principal, bcrypt hash)`` pairs."""
    lines = [
        "# NATS authorization of the smart-city platform, written by",
        "# `smartcity identity nats-config`. Include it from nats-server.conf:",
        f"#   include {_quote(AUTHORIZATION_FILE)}",
        "# Passwords are bcrypt hashes; each user's password is in credentials/<user>.yaml.",
        "authorization {",
        "  users = [",
    ]
    for principal, password_hash in users:
        lines.append(f"    # {principal.user}: {_comment(principal.about)}")
        lines.append("    {")
        lines.append(f"      user: {_quote(principal.user)}")
        lines.append(f"      password: {_quote(password_hash)}")
        permissions = principal.permissions
        if permissions is not None:
            lines.append("      permissions: {")
            lines.append(f"        publish: {{ allow: {_list(permissions.publish, '        ')} }}")
            lines.append(
                f"        subscribe: {{ allow: {_list(permissions.subscribe, '        ')} }}"
            )
            if permissions.allow_responses:
                lines.append("        allow_responses: true")
            lines.append("      }")
        lines.append("    }")
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def credentials_path(folder: Path, user: str) -> Path:
    return folder / CREDENTIALS_DIR / f"{user}.yaml"


@dataclass(frozen=True)
class WrittenAuthorization:
    authorization: Path
    credentials: dict[str, Path]
    """Each user's credentials file."""
    created: tuple[str, ...]
    """Users given a new password in this run (the others kept theirs)."""


def _existing_password(path: Path, user: str) -> str | None:
    if not path.exists():
        return None
    try:
        credentials = read_credentials_file(path)
    except CredentialsError:
        return None  # unreadable or damaged: a new password replaces it
    if credentials.user != user or len(credentials.password) < _MIN_KEPT_PASSWORD:
        return None
    return credentials.password


def write_authorization(
    folder: Path,
    principals: Sequence[Principal],
    *,
    rotate: bool = False,
    rounds: int = DEFAULT_BCRYPT_ROUNDS,
) -> WrittenAuthorization:
    """Write ``authorization.conf`` and every principal's credentials file into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    hashed: list[tuple[Principal, str]] = []
    paths: dict[str, Path] = {}
    created: list[str] = []
    for principal in principals:
        path = credentials_path(folder, principal.user)
        password = None if rotate else _existing_password(path, principal.user)
        if password is None:
            password = secrets.token_urlsafe(_PASSWORD_BYTES)
            write_credentials_file(path, principal.user, password, about=principal.about)
            created.append(principal.user)
        hashed.append((principal, hash_password(password, rounds)))
        paths[principal.user] = path
    target = folder / AUTHORIZATION_FILE
    temporary = target.with_name(f".{target.name}.tmp")
    # Hashes only, but the server alone needs to read them.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(render_authorization(hashed))
    os.replace(temporary, target)
    return WrittenAuthorization(target, paths, tuple(created))
