"""``smartcity bench``: measured figures for the hot paths, each next to its ceiling.

This module holds the group, the edge agent's benchmark and the whole city's (``up``); the
services' benchmarks are :mod:`.bench_services`, ``bench records`` is
:mod:`.records`'s.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from smartcity.cli.bench_services import bench_alerts, bench_identity, bench_monitoring
from smartcity.cli.errors import fail

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks that print their figure next to the ceiling measured in the same run.",
    no_args_is_help=True,
)


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


# Registered here, in the order `smartcity bench --help` lists them (main adds `records`).
bench_app.command("agent")(bench_agent)
bench_app.command("monitoring")(bench_monitoring)
bench_app.command("identity")(bench_identity)
bench_app.command("alerts")(bench_alerts)
bench_app.command("up")(bench_up)
