"""Connections shared by the devices behind them: a serial line, or a TCP gateway.

Several Modbus devices often hang on one physical link: an RS-485 line (unit ids on one
multi-drop wire) or a Modbus TCP gateway in front of such a line (unit ids behind one IP
address and port). Either way the link serves one request at a time, and small gateways accept
only one or two TCP connections. So the drivers of one endpoint share one :class:`Line`: one
pymodbus client, one lock, and they take turns request by request. pyserial opens a port
exclusively anyway; a gateway no longer sees one connection per device.

A late answer on a shared TCP connection cannot be mistaken for the answer to the next
request: pymodbus drops a frame whose transaction id or unit id is not the one awaited, so a
timeout of one device does not cost the others their connection.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from smartcity.agents.modbus.responses import RESPONSES
from smartcity.agents.profile import ModbusEndpoint

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class LineConflictError(Exception):
    """The endpoint is already open with other settings; the message says which."""


@dataclass(eq=False)
class Line:
    """One link (TCP endpoint or serial port) and the drivers whose devices are behind it."""

    key: str
    settings: tuple[int, int, str, int] | None
    """Serial settings (baud rate, byte size, parity, stop bits); None for TCP."""
    client: Client
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: set[int] = field(default_factory=set)

    @property
    def shared(self) -> bool:
        return len(self.users) > 1


_LINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Line]] = (
    weakref.WeakKeyDictionary()
)
"""Open lines per event loop (a transport belongs to the loop that opened it)."""


def line_key(endpoint: ModbusEndpoint) -> str:
    if endpoint.scheme == "tcp":
        return f"tcp://{endpoint.host}:{endpoint.port}"
    return endpoint.device


def attach(endpoint: ModbusEndpoint, owner: object, *, timeout: float, name: str) -> Line:
    """The line for ``endpoint``, opened for ``owner`` or shared with the drivers already on
    it. The first device's ``timeout`` is the line's. Raises :class:`LineConflictError` for a
    serial port already open at other settings."""
    lines = _LINES.setdefault(asyncio.get_running_loop(), {})
    key = line_key(endpoint)
    line = lines.get(key)
    settings = (
        None
        if endpoint.scheme == "tcp"
        else (endpoint.baudrate, endpoint.bytesize, endpoint.parity, endpoint.stopbits)
    )
    if line is None:
        line = lines[key] = Line(key, settings, _client(endpoint, timeout=timeout, name=name))
    elif line.settings != settings and line.settings is not None:
        baudrate, bytesize, parity, stopbits = line.settings
        raise LineConflictError(
            f"serial port {endpoint.device} is already open at {baudrate} baud, "
            f"{bytesize}{parity}{stopbits} for another device on the line"
        )
    line.users.add(id(owner))
    return line


def detach(line: Line, owner: object) -> None:
    """``owner`` leaves the line; the last one out closes it."""
    if id(owner) not in line.users:
        return
    line.users.discard(id(owner))
    if line.users:
        return
    lines = _LINES.get(asyncio.get_running_loop(), {})
    if lines.get(line.key) is line:
        del lines[line.key]
    line.client.close()


def _client(endpoint: ModbusEndpoint, *, timeout: float, name: str) -> Client:
    # pymodbus' own retries and reconnect loop are off: the transport retries, the agent paces
    client: Client
    if endpoint.scheme == "tcp":
        client = AsyncModbusTcpClient(
            endpoint.host,
            port=endpoint.port,
            name=name,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
        )
    else:
        client = _serial(endpoint, timeout)
    for response in RESPONSES:  # register answers decoded in one step
        client.register(response)
    return client


def _serial(endpoint: ModbusEndpoint, timeout: float) -> AsyncModbusSerialClient:
    return AsyncModbusSerialClient(
        endpoint.device,
        framer=FramerType.RTU,
        baudrate=endpoint.baudrate,
        bytesize=endpoint.bytesize,
        parity=endpoint.parity,
        stopbits=endpoint.stopbits,
        name=endpoint.device,
        timeout=timeout,
        retries=0,
        reconnect_delay=0,
    )
