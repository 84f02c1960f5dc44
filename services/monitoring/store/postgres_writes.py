"""The statements of a PostgreSQL write and the copies it makes, importable under this name;
they are defined in :mod:`smartcity.services.monitoring.store.postgres.statements`."""

from smartcity.services.monitoring.store.postgres.statements import (
    CREATE_STAGE,
    INSERT_BATCHES,
    INSERT_POINTS,
    INSERT_SERIES,
    LATEST,
    PLAIN_COLUMNS,
    POINT_COLUMNS,
    SELECT_SERIES,
    STAGE,
    SUMMARY_UPSERTS,
    UPSERT_DEVICE,
    UPSERT_SUMMARY,
    WRITE_FRESH,
    AlreadyStored,
    copy_points,
    stage_summary,
)

__all__ = [
    "CREATE_STAGE",
    "INSERT_BATCHES",
    "INSERT_POINTS",
    "INSERT_SERIES",
    "LATEST",
    "PLAIN_COLUMNS",
    "POINT_COLUMNS",
    "SELECT_SERIES",
    "STAGE",
    "SUMMARY_UPSERTS",
    "UPSERT_DEVICE",
    "UPSERT_SUMMARY",
    "WRITE_FRESH",
    "AlreadyStored",
    "copy_points",
    "stage_summary",
]
