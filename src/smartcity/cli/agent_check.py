"""``smartcity agent check``: the commissioning tool.

It validates a profile, connects, reads every point once and shows the decoded values; for
Modbus also each point's raw registers and, with ``--orders``, every 32/64-bit point decoded
in all four byte and word orders, so a wrong order shows at a glance. It also says whether
the agent's disk buffer can be written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.cli.agent_profiles import ConfigOption, load_profiles
from smartcity.cli.errors import fail

__all__ = ["agent_check"]

_ORDERS = {
    ("big", "big"): "ABCD",
    ("big", "little"): "CDAB",
    ("little", "big"): "BADC",
    ("little", "little"): "DCBA",
}


def agent_check(
    profile: Annotated[
        Path,
        typer.Option("--profile", "-p", exists=True, dir_okay=False, help="Device profile."),
    ],
    orders: Annotated[
        bool,
        typer.Option(
            "--orders",
            help="Modbus: also decode every 32/64-bit point in all four orders "
            "(ABCD, CDAB, BADC, DCBA), to find the one the device uses.",
        ),
    ] = False,
    agent_id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Id of the agent whose disk buffer to check (default: as the agent)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Validate a profile, connect, read every point once and show the decoded values.

    The commissioning tool: for Modbus it also shows each point's raw registers, so a wrong
    byte or word order shows at a glance. It also says whether the agent's disk buffer can be
    written (a lock held by another process or a full disk stops it). Exits 1 when a point is
    not read as good or the buffer cannot be written.
    """
    (device,) = load_profiles([profile])
    buffer_ok = _check_buffer(device, agent_id, config)
    from smartcity.agents.driver import driver_for
    from smartcity.agents.modbus.driver import ModbusDriver

    async def read() -> tuple[list, dict, Any]:
        driver = driver_for(device)
        try:
            readings = await driver.read_once()
            raw = await driver.read_raw() if isinstance(driver, ModbusDriver) else {}
            return readings, raw, getattr(driver, "server_identity", None)
        finally:
            await driver.close()

    try:
        readings, raw, server = asyncio.run(read())
    except (OSError, ConnectionError, TimeoutError) as exc:
        fail(f"cannot read {device.endpoint}: {exc}")
    by_name = {reading.metric: reading for reading in readings}
    table = Table(title=f"{device.site}/{device.device} at {device.endpoint}")
    columns = ["point", "where", "raw", "value", "unit", "quality"]
    if not raw:
        columns.remove("raw")
    if orders and raw:
        columns += ["ABCD", "CDAB", "BADC", "DCBA"]
    for column in columns:
        table.add_column(column, justify="right" if column in ("value", "raw") else "left")
    bad = 0
    for point in device.points:
        reading = by_name.get(point.name)
        row = [point.name, escape(_where(point))]
        if raw:
            row.append(_hex(raw.get(point.name)))
        if reading is None:
            row += ["", point.unit, "[yellow]not read[/yellow]"]
            bad += 1
        else:
            quality = reading.quality.value + (f": {reading.reason}" if reading.reason else "")
            if reading.quality.value != "good":
                bad += 1
                quality = f"[red]{escape(quality)}[/red]"
            row += [_show(reading.value), point.unit, quality]
        if orders and raw:
            row += _all_orders(point, raw.get(point.name))
        table.add_row(*row)
    Console().print(table)
    if server is not None:  # the OPC-UA server's certificate, and why it was trusted
        Console().print(
            f"server certificate: thumbprint {server.thumbprint}, subject {server.subject}\n"
            f"trusted by: {server.trusted_by}",
            highlight=False,
            markup=False,
        )
    if getattr(getattr(device, "security", None), "trust_on_first_use", False):
        Console().print("trust on first use: on (a server not seen before is trusted as it is)")
    if bad or not buffer_ok:
        raise typer.Exit(1)


def _check_buffer(device: object, agent_id: str | None, config: Path | None) -> bool:
    """Print the state of the disk buffer the agent for ``device`` uses; False when an agent
    could not write to it now."""
    from smartcity.agents.agent import buffer_path, default_agent_id
    from smartcity.agents.buffer_state import inspect_buffer
    from smartcity.runtime.config import ConfigError, load_settings

    try:
        settings = load_settings(config, agent={"id": agent_id} if agent_id else None)
    except ConfigError as exc:
        fail(exc, 2)
    ident = settings.agent.id or default_agent_id([device])  # type: ignore[list-item]
    report = inspect_buffer(buffer_path(settings, ident))
    console = Console(highlight=False)
    where = escape(str(report.path))
    if not report.exists:
        console.print(f"disk buffer {where}: not created yet (agent {ident})")
        return True
    owner = f"held by the agent with pid {report.owner}" if report.owner else "no agent runs"
    console.print(
        f"disk buffer {where}: {owner}; {report.batches} batch(es) waiting, "
        f"{report.quarantined} quarantined, {report.dropped_batches} dropped when full"
    )
    if report.problem:
        console.print(f"[red]disk buffer not writable: {escape(report.problem)}[/red]")
        return False
    return True


def _show(value: object) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _hex(registers: list | None) -> str:
    if not registers:
        return ""
    if isinstance(registers[0], bool):
        return "1" if registers[0] else "0"
    return " ".join(f"{word:04X}" for word in registers)


def _all_orders(point: object, registers: list | None) -> list[str]:
    from smartcity.agents.modbus.codec import decode

    if not registers or isinstance(registers[0], bool) or point.width < 2:  # type: ignore[attr-defined]
        return ["", "", "", ""]
    cells = []
    for byte_order, word_order in _ORDERS:
        variant = point.model_copy(  # type: ignore[attr-defined]
            update={"byte_order": byte_order, "word_order": word_order}
        )
        cells.append(_show(decode(registers, variant)))
    return cells


def _where(point: object) -> str:
    """Where a point lives on the device, as the engineer wrote it in the profile."""
    node = getattr(point, "node", None)
    if node is not None:
        return str(node)
    text = f"{point.function} {point.address} {point.type}"  # type: ignore[attr-defined]
    if point.bit is not None:  # type: ignore[attr-defined]
        return f"{text} bit {point.bit}"  # type: ignore[attr-defined]
    if point.width > 1:  # type: ignore[attr-defined]
        text += " " + _ORDERS[(point.byte_order, point.word_order)]  # type: ignore[attr-defined]
    elif point.byte_order == "little":  # type: ignore[attr-defined]
        text += " BA"
    return text
