"""Versioned SQL migrations: files named ``NNNN_what.sql`` in a package per backend, numbered
1, 2, 3 … so that a version number means one schema everywhere. The backends apply them
(:func:`.sqlite.migrate`, :func:`.postgres.migrate`) and record each in ``schema_migrations``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from smartcity.runtime.storage.errors import StoreError

_MIGRATION_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def parse_migrations(files: Iterable[tuple[str, str]]) -> list[Migration]:
    """Migrations from ``(file name, text)`` pairs: named ``NNNN_what.sql``, numbered 1, 2, 3
    … without gaps or repeats."""
    found: list[Migration] = []
    for name, text in files:
        match = _MIGRATION_NAME.fullmatch(name)
        if match is None:
            if name.endswith(".sql"):
                raise StoreError(f"migration file {name!r} is not named NNNN_description.sql")
            continue
        found.append(Migration(int(match.group(1)), match.group(2), text))
    found.sort(key=lambda migration: migration.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StoreError(
                f"migrations must be numbered 1, 2, 3 … without gaps or repeats; found "
                f"{[m.version for m in found]}"
            )
    return found


def load_migrations(package: str) -> list[Migration]:
    """The migrations shipped as ``.sql`` files in ``package``."""
    folder = resources.files(package)
    return parse_migrations(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.is_file()
    )


def newer_schema_error(found: int, known: int, where: str) -> StoreError:
    return StoreError(
        f"the database at {where} has schema version {found}, newer than the {known} this "
        "version of smartcity knows; upgrade smartcity (never downgrade a migrated database)"
    )
