"""``smartcity bench``: measured figures for the hot paths, each next to its ceiling."""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from smartcity.cli.errors import fail

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks that print their figure next to the ceiling measured in the same run.",
    no_args_is_help=True,
)


@bench_app.command("agent")
def bench_agent(
    devices: Annotated[
        int, typer.Option(min=1, max=64, help="Modbus TCP devices, each a process of its own.")
    ] = 16,
    points: Annotated[
        int, typer.Option(min=1, max=1000, help="float32 holding registers per device.")
    ] = 120,
    poll: Annotated[str, typer.Option(help="Poll interval of every device (20ms, 1s).")] = "20ms",
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Agent worker processes (smartcity agent --workers).")
    ] = 1,
    seconds: Annotated[float, typer.Option(min=1, help="Length of each measured window.")] = 10,
    warmup: Annotated[float, typer.Option(min=0, help="Agent warm-up before measuring.")] = 5,
) -> None:
    """Points/s one agent delivers from Modbus TCP devices served by pyModbusTCP (an
    independent library, from the development extras), counted in the JetStream stream.

    Prints the points offered, read (GOOD only), acknowledged by JetStream (distinct
    sequences, after the warm-up) and the agent's CPU per 10,000 points/s, next to plain
    pymodbus clients reading the same devices in the same run (the ceiling). Exits 1 when
    a reading was lost.
    """
    from smartcity.agents.profile import parse_duration
    from smartcity.bench.agent import TARGET_SHARE, BenchError, run_agent_bench

    try:
        interval = parse_duration(poll)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--poll") from None
    console = Console(highlight=False)
    started = time.monotonic()

    def progress(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f} s  {message}[/dim]")

    try:
        result = run_agent_bench(
            devices=devices,
            points=points,
            poll=interval,
            workers=workers,
            seconds=seconds,
            warmup=warmup,
            progress=progress,
        )
    except BenchError as exc:
        fail(exc)
    offered = result.offered_per_second
    per_10k = result.per_10k
    table = Table(
        title=f"agent ({_processes(result.workers)}): {result.devices} device(s) x "
        f"{result.points} float32 every {interval * 1000:g} ms, {result.seconds:.1f} s window"
    )
    for column in ("what", "points/s", "of offered", "CPU s per 10,000 points/s"):
        table.add_column(column, justify="left" if column == "what" else "right")
    table.add_row("offered by the devices", f"{offered:,.0f}", "100%", "")
    table.add_row(
        "plain pymodbus clients, as fast as the devices answer (ceiling)",
        f"{result.ceiling_points_per_second:,.0f}",
        f"{result.ceiling_points_per_second / offered:.0%}",
        f"{per_10k(result.ceiling_cores, result.ceiling_points_per_second):.3f}",
    )
    table.add_row(
        "agent: read, GOOD only",
        f"{result.read_good_per_second:,.0f}",
        f"{result.read_good_per_second / offered:.0%}",
        "",
    )
    table.add_row(
        "agent: acknowledged by JetStream, distinct sequences",
        f"[bold]{result.acknowledged_per_second:,.0f}[/bold]",
        f"[bold]{result.acknowledged_per_second / offered:.0%}[/bold]",
        f"{per_10k(result.agent_cores, result.acknowledged_per_second):.3f}",
    )
    console.print(table)
    share = result.acknowledged_per_second / offered
    verdict = "meets" if share >= TARGET_SHARE else "misses"
    console.print(
        f"acknowledged / offered: {share:.1%} ({verdict} the {TARGET_SHARE:.0%} target); "
        f"acknowledged / ceiling: "
        f"{result.acknowledged_per_second / result.ceiling_points_per_second:.1%}; "
        f"agent CPU {result.agent_cores:.2f} core(s), ceiling clients "
        f"{result.ceiling_cores:.2f} core(s)"
    )
    beside = ", ".join(f"{name} {cores:.2f}" for name, cores in result.beside_cores.items())
    console.print(
        f"CPU beside the agent in its window (cores): {beside}, of {os.cpu_count()} in the machine"
    )
    stream = result.stream
    console.print(
        f"stream after drain: {stream.messages:,} messages, {stream.readings:,} readings, "
        f"{stream.distinct:,} distinct, {stream.bad:,} not GOOD, "
        + (f"[red]{stream.gaps:,} missing[/red]" if stream.gaps else "none missing")
    )
    if stream.gaps:
        raise typer.Exit(1)


def _processes(workers: int) -> str:
    return "one process" if workers == 1 else f"{workers} worker processes"


@bench_app.command("monitoring")
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
) -> None:
    """Readings/s ingested end to end (publish -> durable in storage) into SQLite and
    PostgreSQL, each next to the storage engine alone writing the same rows (a plain
    executemany, a binary COPY) in the same run, with live streams attached; the transport
    (plain nats-py publish -> consume); then p50/p99 of latest and range queries over a
    store of --query-points points. Compare the ratios across machines, not the rates."""
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
            )
        )
    table = Table(
        title=f"ingest: {result.readings:,} readings in {result.batches:,} batches, "
        f"1 matching and {NON_MATCHING_STREAMS} other live streams attached"
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
        ratio = backend.ingest_readings_per_second / backend.engine_readings_per_second
        table.add_row(
            f"{engines.get(backend.name, backend.name)} (ceiling)",
            f"{backend.engine_readings_per_second:,.0f}",
            "",
            "",
        )
        table.add_row(
            f"monitoring ingest into {backend.name}",
            f"[bold]{backend.ingest_readings_per_second:,.0f}[/bold]",
            f"[bold]{ratio:.0%}[/bold]",
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


@bench_app.command("identity")
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


@bench_app.command("alerts")
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


@bench_app.command("up")
def bench_up(
    seconds: Annotated[float, typer.Option(min=5, help="Length of the idle window measured.")] = 30,
    settle: Annotated[
        float, typer.Option(min=0, help="Seconds after ready before the window starts.")
    ] = 10,
) -> None:
    """How long `smartcity up` takes to be ready, and what the whole city costs idling.

    Runs `smartcity up --ports auto` in a new folder, as a user starts it; measures the time
    to ready, then the CPU (as cores) and memory (proportional set size) of the supervisor
    and every process below it over an idle window, per process and in total; then stops it
    with SIGINT and checks that nothing is left. Limits: ready under 20 s, idle under one
    core and 1 GiB.
    """
    from smartcity.bench.up import (
        CPU_LIMIT_CORES,
        MEMORY_LIMIT_BYTES,
        READY_LIMIT_SECONDS,
        run_up_bench,
    )

    console = Console()
    with console.status("benchmark") as status:
        try:
            result = run_up_bench(
                seconds=seconds, settle=settle, progress=lambda message: status.update(message)
            )
        except RuntimeError as exc:
            from smartcity.cli.errors import fail

            fail(exc)
    mib = 1024 * 1024
    table = Table(title=f"smartcity up: {result.processes} processes, idle over "
                  f"{result.window_seconds:.0f} s")  # fmt: skip
    table.add_column("process")
    table.add_column("processes", justify="right")
    table.add_column("CPU (cores)", justify="right")
    table.add_column("memory (MiB)", justify="right")
    for cost in result.by_process:
        table.add_row(
            cost.name, str(cost.processes), f"{cost.cores:.3f}", f"{cost.memory_bytes / mib:.0f}"
        )
    table.add_row(
        "the whole city", str(result.processes), f"{result.cores:.3f}",
        f"{result.memory_bytes / mib:.0f}", style="bold",
    )  # fmt: skip
    console.print(table)

    def verdict(ok: bool) -> str:
        return "[green]within[/green]" if ok else "[red]over[/red]"

    console.print(
        f"ready after {result.ready_seconds:.1f} s from the command's start "
        f"({result.reported_ready_seconds:.1f} s as it reports itself): "
        f"{verdict(result.ready_seconds < READY_LIMIT_SECONDS)} the {READY_LIMIT_SECONDS:g} s limit"
    )
    console.print(
        f"idle: {result.cores:.2f} cores ({result.cores / CPU_LIMIT_CORES:.0%} of the limit, "
        f"{verdict(result.cores < CPU_LIMIT_CORES)}), {result.memory_bytes / mib:,.0f} MiB "
        f"({result.memory_bytes / MEMORY_LIMIT_BYTES:.0%} of 1 GiB, "
        f"{verdict(result.memory_bytes < MEMORY_LIMIT_BYTES)})"
    )
    left = ", ".join(map(str, result.left_behind)) or "none"
    console.print(f"stopped by SIGINT in {result.stop_seconds:.1f} s; processes left: {left}")
