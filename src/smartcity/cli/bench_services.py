"""``smartcity bench monitoring|identity|alerts``: the services' hot paths, each next to its
engine alone in the same run.

Monitoring's ingest next to SQLite's executemany and PostgreSQL's COPY of the same rows;
token verification next to the Ed25519 check alone, logins next to one argon2id hash; an
alert's latency next to the raw NATS round trip. The measuring is in ``smartcity.bench``;
this module runs it and prints the tables.
"""

from __future__ import annotations

import statistics
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["bench_alerts", "bench_identity", "bench_monitoring"]


def bench_monitoring(
    devices: Annotated[int, typer.Option(min=1, help="Devices publishing.")] = 20,
    batches: Annotated[int, typer.Option(min=1, help="Batches per device.")] = 100,
    per_batch: Annotated[int, typer.Option(min=1, help="Readings per batch.")] = 500,
    query_points: Annotated[
        int, typer.Option(min=1000, help="Points preloaded for the query latencies.")
    ] = 10_000_000,
    postgres: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL to measure too (a temporary schema is made and dropped), e.g. "
            "postgresql://postgres@127.0.0.1/test."
        ),
    ] = None,
    rounds: Annotated[
        int,
        typer.Option(min=1, help="Rounds of engine-then-ingest per backend; medians are reported."),
    ] = 5,
) -> None:
    """Readings/s ingested end to end (publish -> durable in storage) into SQLite and
    PostgreSQL, each next to the storage engine alone writing the same rows (a plain
    executemany, a binary COPY) in the same run, with live streams attached; the transport
    (plain nats-py publish -> consume); then p50/p99 of latest and range queries over a
    store of --query-points points. Compare the ratios across machines, not the rates; the
    ratio printed is the median of --rounds rounds, with the lowest and highest."""
    import asyncio

    from smartcity.bench.monitoring import (
        NON_MATCHING_STREAMS,
        TARGET_P99_MS,
        TARGET_RATIO,
        run_monitoring_bench_async,
    )

    console = Console()
    with console.status("benchmark") as status:
        result = asyncio.run(
            run_monitoring_bench_async(
                devices=devices,
                batches=batches,
                per_batch=per_batch,
                query_points=query_points,
                postgres=postgres,
                progress=lambda message: status.update(message),
                rounds=rounds,
            )
        )
    table = Table(
        title=f"ingest: {result.readings:,} readings in {result.batches:,} batches, "
        f"1 matching and {NON_MATCHING_STREAMS} other live streams attached; "
        f"median of {rounds} round(s)"
    )
    table.add_column("what")
    table.add_column("readings/s", justify="right")
    table.add_column("ingest / engine", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        "plain nats-py publish -> consume (transport)",
        f"{result.ceiling_readings_per_second:,.0f}",
        "",
        "",
    )
    engines = {"sqlite": "SQLite executemany of the same rows", "postgresql": "PostgreSQL COPY"}
    for backend in result.backends:
        ratio = statistics.median(backend.ratios)
        spread = (
            f" ({min(backend.ratios):.0%}–{max(backend.ratios):.0%})"
            if len(backend.ratios) > 1
            else ""
        )
        table.add_row(
            f"{engines.get(backend.name, backend.name)} (ceiling)",
            f"{backend.engine_readings_per_second:,.0f}",
            "",
            "",
        )
        table.add_row(
            f"monitoring ingest into {backend.name}",
            f"[bold]{backend.ingest_readings_per_second:,.0f}[/bold]",
            f"[bold]{ratio:.0%}[/bold]{spread}",
            f">= {TARGET_RATIO.get(backend.name, 0):.0%}",
        )
    console.print(table)
    queries = Table(title="query latency (ms, p50 / p99), 200 of each")
    queries.add_column("backend")
    queries.add_column("points stored", justify="right")
    queries.add_column("latest of a device", justify="right")
    queries.add_column("range 24 h / 1 h step", justify="right")
    queries.add_column("range 1 h / 1 min step", justify="right")
    for backend in result.backends:
        queries.add_row(
            backend.name,
            f"{backend.preloaded:,}",
            "{:.2f} / {:.2f}".format(*backend.latest_ms),
            "{:.2f} / {:.2f}".format(*backend.range_day_ms),
            "{:.2f} / {:.2f}".format(*backend.range_hour_ms),
        )
    console.print(queries)
    console.print(f"target: p99 under {TARGET_P99_MS:g} ms")


def bench_identity(
    tokens: Annotated[int, typer.Option(min=100, help="Distinct tokens verified.")] = 2000,
    calls: Annotated[int, typer.Option(min=100, help="gRPC calls per measured run.")] = 4000,
    logins: Annotated[int, typer.Option(min=1, help="Logins measured.")] = 10,
) -> None:
    """Token verifications/s (a token's first sight, and the same token again) next to the
    Ed25519 engine alone; gRPC calls/s with and without the auth interceptor; the cost of
    one argon2id hash and logins/s through the identity service, all in the same run."""
    from smartcity.bench.identity import TARGET_VERIFICATIONS_PER_SECOND, run_identity_bench

    console = Console()
    with console.status("benchmark") as status:
        result = run_identity_bench(
            tokens=tokens,
            calls=calls,
            logins=logins,
            progress=lambda message: status.update(message),
        )
    table = Table(title=f"token verification, one core, {result.tokens:,} distinct tokens")
    table.add_column("what")
    table.add_column("per second", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        "Ed25519 signature check alone (ceiling)", f"{result.signature_engine_per_second:,.0f}", ""
    )
    table.add_row(
        "verify a token at first sight",
        f"{result.first_sight_per_second:,.0f}",
        f"{result.first_sight_per_second / result.signature_engine_per_second:.0%} of ceiling",
    )
    table.add_row(
        "verify the same token again (every later call)",
        f"[bold]{result.again_per_second:,.0f}[/bold]",
        f"target >= {TARGET_VERIFICATIONS_PER_SECOND:,}",
    )
    table.add_row(
        f"gRPC unary calls without auth ({result.calls:,})",
        f"{result.calls_without_auth_per_second:,.0f}",
        "",
    )
    table.add_row(
        "gRPC unary calls with the auth interceptor",
        f"{result.calls_with_auth_per_second:,.0f}",
        f"{result.calls_with_auth_per_second / result.calls_without_auth_per_second:.0%}"
        " of without",
    )
    hash_rate = 1000 / result.argon2_hash_ms
    table.add_row(
        "argon2id hashes, identity's parameters (ceiling for logins)", f"{hash_rate:,.1f}", ""
    )
    table.add_row(
        "logins through the identity service (SQLite)",
        f"{result.logins_per_second:,.1f}",
        f"{result.logins_per_second / hash_rate:.0%} of ceiling",
    )
    console.print(table)


def bench_alerts(
    rate: Annotated[
        float, typer.Option(min=100, help="Background readings/s, published by another process.")
    ] = 50_000,
    rules: Annotated[int, typer.Option(min=8, help="Threshold rules installed.")] = 10_000,
    seconds: Annotated[float, typer.Option(min=1, help="Length of the measured window.")] = 10,
    store: Annotated[
        str | None,
        typer.Option(
            help="postgresql://… to measure on PostgreSQL (default: SQLite in a temp dir)."
        ),
    ] = None,
) -> None:
    """Latency from a reading published to its alert event received (p50/p99) under a
    background load, rule evaluations/s, and the raw NATS round trip of the same run."""
    import asyncio

    from smartcity.bench.alerts import TARGET_P99_MS, run_alerts_bench

    console = Console()
    with console.status("benchmark") as status:
        result = asyncio.run(
            run_alerts_bench(
                rate=rate,
                rules=rules,
                seconds=seconds,
                store_url=store,
                progress=lambda message: status.update(message),
            )
        )
    table = Table(
        title=f"alerts ({result.store}): {result.rules:,} rules, background "
        f"{result.published_rate:,.0f} readings/s published (asked {result.rate:,.0f})"
    )
    table.add_column("what")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    table.add_column("samples", justify="right")
    pct = result.percentile
    table.add_row(
        "raw NATS: JetStream publish -> subscriber (ceiling)",
        f"{pct(result.raw_ms, 0.5):.2f}",
        f"{pct(result.raw_ms, 0.99):.2f}",
        str(len(result.raw_ms)),
    )
    table.add_row(
        "reading published -> AlertEvent received",
        f"{pct(result.alert_ms, 0.5):.2f}",
        f"{pct(result.alert_ms, 0.99):.2f}",
        str(len(result.alert_ms)),
    )
    console.print(table)
    console.print(
        f"rule evaluations/s: {result.evaluations_per_second:,.0f} over the window, "
        f"{result.capacity_per_second:,.0f} per second spent evaluating"
    )
    verdict = "meets" if pct(result.alert_ms, 0.99) < TARGET_P99_MS else "misses"
    console.print(f"p99 target {TARGET_P99_MS:g} ms: {verdict}; probes lost: {result.lost}")
