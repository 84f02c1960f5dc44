"""The field devices of ``smartcity bench agent``: Modbus TCP servers of an independent
library, each in a process of its own.

The devices are served by pyModbusTCP (a development extra), neither pymodbus, which the
agent reads with, nor the project's simulator, so the agent is measured against a server
whose framing and register handling it shares no code with. Each process serves one device
on a loopback port of its own: ``points`` float32 values (big-endian words, two holding
registers each, from address 0) that all change every ``period`` seconds (at the first read
after each period, so that an idle device costs nothing).

Run as ``python -m smartcity.bench.agent_devices --points 120 --period 0.02``: it prints
``listening 127.0.0.1:PORT`` once it accepts connections, and serves until its standard
input closes (the bench ended, or died) or it is terminated.
"""

from __future__ import annotations

import argparse
import importlib
import math
import struct
import sys
import threading
import time

PYMODBUSTCP_MISSING = (
    "`smartcity bench agent` serves its devices with pyModbusTCP, a Modbus server library "
    "independent of the agent's pymodbus, which comes with the development extras: "
    "pip install 'smartcity[dev]'"
)


def pymodbustcp_installed() -> bool:
    try:
        importlib.import_module("pyModbusTCP.server")
    except ImportError:
        return False
    return True


def register_values(points: int, now: float) -> list[int]:
    """The holding registers at ``now``: point ``i`` is a float32 around ``100 + i`` that
    moves on a five-second sine, so every read finds new values."""
    phase = 2 * math.pi * now / 5
    values = [100.0 + index + 10.0 * math.sin(phase + index) for index in range(points)]
    return list(struct.unpack(f">{2 * points}H", struct.pack(f">{points}f", *values)))


def serve(points: int, period: float, host: str = "127.0.0.1") -> None:
    """Serve one device until standard input closes."""
    from pyModbusTCP.server import DataBank, ModbusServer

    class Device(DataBank):  # type: ignore[misc]
        """Holding registers that take new values once per ``period``, when read: the
        values a device measures, without a thread waking the process in between."""

        def __init__(self) -> None:
            super().__init__(coils_size=1, d_inputs_size=1, h_regs_size=2 * points, i_regs_size=1)
            self.changed = 0.0
            self.lock = threading.Lock()

        def get_holding_registers(
            self, address: int, number: int = 1, srv_info: object = None
        ) -> list[int] | None:
            now = time.time()
            with self.lock:
                if now - self.changed >= period:
                    self.changed = now
                    self.set_holding_registers(0, register_values(points, now))
            return super().get_holding_registers(address, number, srv_info)

    server = ModbusServer(host=host, port=0, no_block=True, data_bank=Device())
    server.start()
    # pyModbusTCP binds port 0 to a free port; the socket server knows which.
    port = server._service.server_address[1]
    print(f"listening {host}:{port}", flush=True)
    try:
        sys.stdin.read()  # until the bench closes the pipe
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=120)
    parser.add_argument("--period", type=float, default=0.02)
    args = parser.parse_args(argv)
    if not pymodbustcp_installed():
        sys.exit(PYMODBUSTCP_MISSING)
    serve(args.points, args.period)


if __name__ == "__main__":
    main()
