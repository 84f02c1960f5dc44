"""Faults injected into a running simulator through its own protocol, as a drill would.

A Modbus simulator (substation, air-quality station) takes a fault code and a duration in
its control block (holding registers 200..203, :mod:`.modbus_control`); the OPC-UA water station
through its ``InjectFault`` method. ``smartcity sim fault`` and the fault schedule of
``smartcity up`` both send them from here.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["inject_fault", "modbus_fault", "opcua_fault"]


async def inject_fault(
    endpoint: str,
    fault: str,
    seconds: float,
    *,
    unit: int = 1,
    cert: Path | None = None,
    key: Path | None = None,
) -> str:
    """Inject ``fault`` for ``seconds`` into the simulator at ``endpoint`` (``tcp://`` for
    Modbus, ``opc.tcp://`` for OPC-UA); what the simulator said.

    Raises ``ValueError`` for a fault the simulator does not know or refuses, and
    ``OSError``/``ConnectionError``/``TimeoutError`` when it cannot be reached.
    """
    if endpoint.startswith("tcp://"):
        return await modbus_fault(endpoint, fault, seconds, unit)
    if endpoint.startswith("opc.tcp://"):
        return await opcua_fault(endpoint, fault, seconds, cert, key)
    raise ValueError(f"{endpoint!r} is neither tcp://HOST:PORT nor opc.tcp://...")


async def modbus_fault(endpoint: str, fault: str, seconds: float, unit: int) -> str:
    """Ask the unit which simulator it is (holding register 203), check that it knows
    ``fault``, then write the fault code and duration to its control block."""
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusException

    from smartcity.agents.profile import parse_modbus_endpoint
    from smartcity.agents.sim.modbus_control import (
        CONTROL_ADDRESS,
        KIND_ADDRESS,
        Fault,
        SimulatorKind,
    )

    if fault != "clear" and fault not in set(Fault):
        known = "; ".join(f"{kind.title}: {', '.join(kind.faults)}" for kind in SimulatorKind)
        raise ValueError(f"unknown Modbus fault {fault!r}; known: {known}; clear on every one")
    where = parse_modbus_endpoint(endpoint)
    client = AsyncModbusTcpClient(where.host, port=where.port, timeout=3, retries=0)
    if not await client.connect():
        raise ConnectionError(f"cannot connect to {endpoint}")
    try:
        answer = await client.read_holding_registers(KIND_ADDRESS, count=1, device_id=unit)
        if answer.isError():
            raise ValueError(
                f"unit {unit} at {endpoint} is not a smartcity simulator: it refuses to say "
                f"which one it is (holding register {KIND_ADDRESS}: {answer})"
            )
        try:
            kind = SimulatorKind(answer.registers[0])
        except ValueError:
            raise ValueError(
                f"unit {unit} at {endpoint} is a simulator of a kind this version does not know "
                f"({answer.registers[0]})"
            ) from None
        if fault != "clear" and Fault(fault) not in kind.faults:
            known = ", ".join([*kind.faults, "clear"])
            raise ValueError(
                f"the {kind.title} at {endpoint} has no fault {fault!r}; its faults: {known}"
            )
        code = 0 if fault == "clear" else Fault(fault).code
        reply = await client.write_registers(CONTROL_ADDRESS, [code, int(seconds)], device_id=unit)
    except ModbusException as exc:
        raise ConnectionError(
            f"unit {unit} at {endpoint} does not answer ({exc}); a unit in a no_answer fault "
            "ignores commands until the fault ends"
        ) from None
    finally:
        client.close()
    if reply.isError():
        raise ValueError(f"the {kind.title} refused the fault: {reply}")
    lasting = "" if fault == "clear" else f" for {seconds:g} s"
    return f"{fault} on unit {unit} of the {kind.title} at {endpoint}{lasting}"


async def opcua_fault(
    endpoint: str, fault: str, seconds: float, cert: Path | None, key: Path | None
) -> str:
    """Call the station's ``InjectFault(fault, seconds)``, signed and encrypted with the
    agent's ``cert`` and ``key`` when given (the station trusts that pair)."""
    from asyncua import Client, ua

    from smartcity.agents.opcua.certificates import application_uri_of

    client = Client(endpoint, timeout=5)
    if cert is not None and key is not None:
        # The station refuses a session whose ApplicationUri is not its certificate's.
        client.application_uri = application_uri_of(cert)
        await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
    elif cert is not None or key is not None:
        raise ValueError("give both --cert and --key for a secured station")
    async with client:
        namespace = await client.get_namespace_index("urn:smartcity:sim:water-station")
        station = client.get_node(ua.NodeId("Station1", namespace))
        method = ua.NodeId("Station1.InjectFault", namespace)
        try:
            return str(await station.call_method(method, fault, float(seconds)))
        except ua.UaStatusCodeError as exc:
            raise ValueError(f"the station refused the fault: {exc}") from None
