"""``smartcity records``: bulk import and export of records, and reading one record or its
history from a running records service.

``import`` and ``export`` work on the records storage itself (``records.store_url`` or
``--store``), as the operator moving a sector database does; the events of imported
records are published by the records service from its outbox. ``get`` and ``history``
speak the public gRPC API with the caller's token, exactly as any city application does.

``serve_records`` is ``smartcity serve records``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from smartcity.cli.errors import fail, rpc_failed

__all__ = ["bench_records", "records_app"]

records_app = typer.Typer(
    name="records",
    help="Import, export and read the city's records.",
    no_args_is_help=True,
)

TARGET_ENV = "SMARTCITY_RECORDS_TARGET"
TOKEN_ENV = "SMARTCITY_TOKEN"
DEFAULT_TARGET = "127.0.0.1:50052"

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", dir_okay=False, help="YAML configuration.")
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="sqlite:///path.db or postgresql://user@host/db (default: records.store_url)",
    ),
]
FormatOption = Annotated[
    str | None,
    typer.Option("--format", "-f", help="jsonl or csv (default: from the file name, else jsonl)"),
]
TargetOption = Annotated[
    str,
    typer.Option("--target", "-t", envvar=TARGET_ENV, help="Records service host:port."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar=TOKEN_ENV, help="Access token from the identity service."),
]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why you read it (required for health records).")
]


def _format(given: str | None, path: Path | None) -> str:
    fmt = given or ("csv" if path is not None and path.suffix.lower() == ".csv" else "jsonl")
    if fmt not in ("jsonl", "csv"):
        fail(f"--format must be jsonl or csv, not {fmt!r}", 2)
    return fmt


def _settings(config: Path | None, store: str | None) -> Any:
    from smartcity.runtime.config import ConfigError, load_settings

    try:
        return load_settings(config, records={"store_url": store} if store else None)
    except ConfigError as exc:
        fail(exc, 2)


async def _with_service(settings: Any, work: Any) -> Any:
    from smartcity.fields import load_fields
    from smartcity.services.records.app import build_service, store_url
    from smartcity.services.records.schemas import TypeRegistry
    from smartcity.services.records.store import open_store

    store = open_store(store_url(settings))
    await store.open()
    try:
        types = TypeRegistry.from_fields(load_fields(settings.plugins))
        return await work(build_service(store, types, settings))
    finally:
        await store.close()


@records_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines or CSV.")],
    fmt: FormatOption = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Where row errors go (default: FILE.errors.jsonl)."),
    ] = None,
    actor: Annotated[
        str, typer.Option("--actor", help="Principal id the imported versions name as author.")
    ] = "records-import",
    chunk: Annotated[int, typer.Option(min=1, max=10_000, help="Rows per transaction.")] = 500,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Import records from a file, resuming where an interrupted import of the same file
    stopped. Rows with errors are skipped and listed in the report file; identical rows
    change nothing. Exit status 1 when some rows were refused."""
    from smartcity.services.records.bulk import FileRefused, import_file
    from smartcity.services.records.model import Actor
    from smartcity.services.records.store import StoreError

    kind = _format(fmt, file)
    settings = _settings(config, store)
    report = report or file.with_name(file.name + ".errors.jsonl")
    console = Console(stderr=True)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("import", total=None)

        def total(rows: int, done: int) -> None:
            progress.update(task, total=rows, completed=done)

        async def work(service: Any) -> Any:
            return await import_file(
                service,
                None,
                file,
                kind,
                report=report,
                chunk=chunk,
                actor=Actor(actor, "service"),
                on_total=total,
                on_progress=lambda rows: progress.advance(task, rows),
            )

        try:
            stats = asyncio.run(_with_service(settings, work))
        except FileRefused as exc:
            fail(f"{file}: {exc}; nothing of it was imported", 2)
        except StoreError as exc:
            fail(f"{exc}; run the same command again to resume")
    summary = (
        f"{stats.created} created, {stats.updated} updated, {stats.unchanged} unchanged, "
        f"{stats.refused} refused" + (f", {stats.skipped} imported before" if stats.skipped else "")
    )
    Console().print(summary, highlight=False)
    if stats.refused:
        fail(f"{stats.refused} rows refused; see {report}")


@records_app.command("export")
def export_command(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", dir_okay=False, help="File (default: stdout).")
    ] = None,
    fmt: FormatOption = None,
    record_type: Annotated[str, typer.Option("--type", help="Only records of this type.")] = "",
    field: Annotated[str, typer.Option("--field", help="Only types of this field.")] = "",
    query: Annotated[str, typer.Option("--query", "-q", help="Conditions, as in search.")] = "",
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Export the latest versions of records (not deleted ones), oldest first, in a form
    ``smartcity records import`` takes back."""
    import sys

    from smartcity.runtime.errors import DomainError
    from smartcity.services.records.bulk import export_records
    from smartcity.services.records.search import Search
    from smartcity.services.records.store import StoreError

    kind = _format(fmt, out)
    settings = _settings(config, store)
    search = Search(type=record_type, field=field, query=query, reason="export")
    target = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        count = asyncio.run(
            _with_service(
                settings, lambda service: export_records(service, None, target, kind, search)
            )
        )
    except (DomainError, StoreError) as exc:
        fail(exc)
    finally:
        if out:
            target.close()
    Console(stderr=True).print(f"{count} records exported", highlight=False)


async def _call(target: str, token: str | None, method: str, request: Any) -> Any:
    import grpc

    from smartcity.records.v1 import records_pb2_grpc
    from smartcity.runtime.grpc_client import channel

    async with channel(target, token=token) as connection:
        stub = records_pb2_grpc.RecordsServiceStub(connection)
        try:
            return await getattr(stub, method)(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            rpc_failed("records", target, exc)


def _print(message: Any) -> None:
    from google.protobuf.json_format import MessageToDict

    typer.echo(json.dumps(MessageToDict(message), ensure_ascii=False, indent=2))


@records_app.command("get")
def get_command(
    record_id: Annotated[str, typer.Argument(help="Record id.")],
    version: Annotated[int, typer.Option(min=0, help="Version; 0 is the latest.")] = 0,
    reason: ReasonOption = "",
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Print one version of a record as JSON."""
    from smartcity.records.v1 import records_pb2

    request = records_pb2.GetRecordRequest(id=record_id, version=version, reason=reason)
    _print(asyncio.run(_call(target, token, "GetRecord", request)).record)


@records_app.command("history")
def history_command(
    record_id: Annotated[str, typer.Argument(help="Record id.")],
    reason: ReasonOption = "",
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Print every version of a record, newest first, as JSON Lines."""
    from google.protobuf.json_format import MessageToDict

    from smartcity.common.v1 import common_pb2
    from smartcity.records.v1 import records_pb2

    page_token = ""
    while True:
        request = records_pb2.ListRecordHistoryRequest(
            id=record_id, reason=reason, page=common_pb2.PageRequest(page_token=page_token)
        )
        response = asyncio.run(_call(target, token, "ListRecordHistory", request))
        for item in response.records:
            typer.echo(json.dumps(MessageToDict(item), ensure_ascii=False))
        page_token = response.page.next_page_token
        if not page_token:
            return


def bench_records(
    postgres: Annotated[
        str,
        typer.Option(
            "--postgres",
            envvar="SMARTCITY_BENCH_POSTGRES_URL",
            help="PostgreSQL to measure on; a schema of its own is made and dropped.",
        ),
    ],
    rows: Annotated[int, typer.Option(min=1000, help="Records to import.")] = 1_500_000,
    samples: Annotated[int, typer.Option(min=100, help="Gets and searches timed.")] = 2000,
    chunk: Annotated[int, typer.Option(min=1, max=20_000, help="Rows per transaction.")] = 2000,
) -> None:
    """Import rows/s and get/search p50/p99 of the records service on PostgreSQL, next to a
    raw COPY of the same rows in the same run."""
    from rich.table import Table

    from smartcity.bench.records import (
        TARGET_GET_P99_MS,
        TARGET_IMPORT_SHARE,
        TARGET_SEARCH_P99_MS,
        run_records_bench,
    )

    console = Console()
    with console.status("benchmark") as status:
        result = run_records_bench(
            postgres, rows=rows, samples=samples, chunk=chunk, progress=status.update
        )
    table = Table(title=f"records on PostgreSQL: {result.rows:,} school records")
    table.add_column("what")
    table.add_column("figure", justify="right")
    table.add_column("target", justify="right")
    share = result.import_rows_per_second / result.copy_rows_per_second
    of_tables = result.import_rows_per_second / result.tables_rows_per_second
    table.add_row(
        "raw COPY of the same rows (ceiling)", f"{result.copy_rows_per_second:,.0f} rows/s", ""
    )
    table.add_row(
        "COPY of the import's rows into the service's tables",
        f"{result.tables_rows_per_second:,.0f} rows/s",
        "",
    )
    table.add_row(
        "import (validated, versioned, outbox)",
        f"{result.import_rows_per_second:,.0f} rows/s ({share:.0%}; {of_tables:.0%} of tables)",
        f">= {TARGET_IMPORT_SHARE:.0%} of COPY",
    )
    table.add_row(
        f"get, p50 / p99 of {result.samples}",
        f"{result.get_p50_ms:.2f} / {result.get_p99_ms:.2f} ms",
        f"p99 < {TARGET_GET_P99_MS:g} ms",
    )
    table.add_row(
        f"search by indexed field, p50 / p99 of {result.samples}",
        f"{result.search_p50_ms:.2f} / {result.search_p99_ms:.2f} ms",
        f"p99 < {TARGET_SEARCH_P99_MS:g} ms",
    )
    console.print(table)
