"""A PostgreSQL schema of its own for one bench run, dropped afterwards: a bench never
writes into the schemas a city (or an earlier run) keeps its data in, and every run starts
from empty tables, as its figures assume."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def temporary_schema(url: str, prefix: str = "bench") -> AsyncIterator[str]:
    """``url`` with ``search_path`` set to a new schema, which is dropped with everything in
    it when the block ends."""
    import asyncpg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await admin.close()
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}search_path={schema}"
    finally:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
