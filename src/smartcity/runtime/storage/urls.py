"""Where a service keeps its data when nobody says: one rule for every service."""

from __future__ import annotations

from pathlib import Path

__all__ = ["store_url"]


def store_url(configured: str | None, data_dir: str | Path, service: str) -> str:
    """``configured`` when set; otherwise SQLite in ``<data_dir>/<service>.db`` (the folder is
    made), the embedded default that needs no database server."""
    if configured:
        return configured
    path = (Path(data_dir) / f"{service}.db").absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


SQLITE_SCHEMES = ("sqlite:",)
POSTGRES_SCHEMES = ("postgresql:", "postgres:")


def backend_of(url: str, service: str) -> str:
    """``"sqlite"`` or ``"postgres"``: the backend a storage URL names. Anything else is
    refused with the two forms ``service`` accepts."""
    if url.startswith(SQLITE_SCHEMES):
        return "sqlite"
    if url.startswith(POSTGRES_SCHEMES):
        return "postgres"
    raise ValueError(
        f"unknown storage URL {url.split(':', 1)[0]!r}: use sqlite:///path/{service}.db or "
        "postgresql://user@host/database"
    )
