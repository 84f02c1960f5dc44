"""Device profiles: the YAML file a SCADA engineer writes for one field device.

The format is a contract (docs/architecture.md, "Device profiles"); this module is the one
place that knows it. A profile is checked completely at load time, before any socket is
opened, so that an engineer on site sees every mistake at once with the file, the point and
the reason, rather than a decoding surprise at 3 a.m. Unknown keys are mistakes too: a misspelt
``word_ordr`` silently falling back to the default is exactly the byte-order bug that
gateways are known for.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
POINT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

MAX_READ_REGISTERS = 125
"""Modbus application protocol limit for one Read Holding/Input Registers request."""
MAX_READ_BITS = 2000
"""Modbus application protocol limit for one Read Coils/Discrete Inputs request."""


class ProfileError(ValueError):
    """A profile that cannot be used. ``problems`` holds one line per mistake."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{source}: invalid device profile\n{lines}")


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?\s*$")


def _seconds(value: Any) -> Any:
    """Accept ``1s``, ``250ms``, ``2m``, ``1h`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 1s, 250ms, 2m")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration (examples: 1s, 250ms, 2m, 1h)")
        return float(match.group(1)) * _UNITS[match.group(2) or "s"]
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


def parse_duration(text: str) -> float:
    """Seconds in ``text`` as a profile writes a duration (``20ms``, ``1s``, ``2m``, or a
    number of seconds); ValueError when it is none, or not positive."""
    seconds = float(_seconds(text))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOL = "bool"

    @property
    def registers(self) -> int:
        """How many 16-bit registers one value occupies."""
        return _REGISTERS[self]


_REGISTERS = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT64: 4,
    DataType.BOOL: 1,
}


class Function(StrEnum):
    """The four Modbus data tables; each is its own address space."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"

    @property
    def is_bits(self) -> bool:
        return self in (Function.COIL, Function.DISCRETE)

    @property
    def is_writable(self) -> bool:
        return self in (Function.HOLDING, Function.COIL)


Order = Literal["big", "little"]

_NOTATION: dict[str, tuple[Order, Order]] = {
    # notation: (byte order inside a register, word order across registers)
    "ABCD": ("big", "big"),
    "CDAB": ("big", "little"),
    "BADC": ("little", "big"),
    "DCBA": ("little", "little"),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointBase(_Model):
    """What every point has, whatever the protocol."""

    name: str
    unit: str = ""
    description: str = ""
    deadband: float | None = Field(
        default=None, ge=0, description="report only when the value moves by more than this"
    )
    poll: Literal["fast", "slow"] = "fast"
    interval: Duration | None = Field(
        default=None, description="per-point poll interval; overrides the poll class"
    )
    writable: bool = False
    min: float | None = None
    max: float | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not POINT_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a point name (lower case letters, digits and _, "
                "starting with a letter)"
            )
        return value

    @model_validator(mode="after")
    def _limits(self) -> PointBase:
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("min and max must be finite numbers")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if (self.min is not None or self.max is not None) and not self.writable:
            raise ValueError("min/max bound what may be written: set writable: true or drop them")
        return self


class ModbusPoint(PointBase):
    address: int = Field(ge=0, le=65535)
    function: Function = Function.HOLDING
    type: DataType = DataType.UINT16
    byte_order: Order = "big"
    word_order: Order = "big"
    order: str | None = Field(
        default=None, description="ABCD, CDAB, BADC or DCBA; instead of byte_order/word_order"
    )
    registers: int | None = Field(
        default=None, ge=1, description="optional; when given it must match the type's width"
    )
    bit: int | None = Field(default=None, ge=0, le=15, description="bool inside a register")
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _notation(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or data.get("order") is None:
            return data
        code = str(data["order"]).upper()
        if code not in _NOTATION:
            raise ValueError(f"order {data['order']!r} is not one of ABCD, CDAB, BADC, DCBA")
        if "byte_order" in data or "word_order" in data:
            raise ValueError("give either order or byte_order/word_order, not both")
        byte_order, word_order = _NOTATION[code]
        # Kept as the two explicit keys only, so a profile written back out is unambiguous.
        return {**data, "order": None, "byte_order": byte_order, "word_order": word_order}

    @model_validator(mode="after")
    def _shape(self) -> ModbusPoint:
        if self.function.is_bits and self.type is not DataType.BOOL:
            raise ValueError(f"a {self.function} holds single bits: its type must be bool")
        if self.function.is_bits and self.bit is not None:
            raise ValueError(f"bit applies to registers, not to a {self.function}")
        if not self.function.is_bits and self.type is DataType.BOOL and self.bit is None:
            raise ValueError("a bool in a register needs bit: 0..15")
        if self.bit is not None and self.type is not DataType.BOOL:
            raise ValueError("bit is only for type bool")
        if self.registers is not None and self.registers != self.type.registers:
            raise ValueError(
                f"registers: {self.registers} does not fit {self.type}, which takes "
                f"{self.type.registers} register(s)"
            )
        if self.address + self.width - 1 > 65535:
            raise ValueError(f"{self.type} at {self.address} runs past address 65535")
        if self.scale == 0 or not math.isfinite(self.scale) or not math.isfinite(self.offset):
            raise ValueError("scale must be a non-zero finite number and offset finite")
        if self.writable and not self.function.is_writable:
            raise ValueError(f"a {self.function} register cannot be written; only holding/coil")
        if self.deadband is not None and self.type is DataType.BOOL:
            raise ValueError("deadband does not apply to a bool")
        return self

    @property
    def width(self) -> int:
        """Registers (or bits, for coils and discrete inputs) the point occupies."""
        return 1 if self.function.is_bits else self.type.registers


class ModbusEndpoint(_Model):
    scheme: Literal["tcp", "rtu"]
    host: str = ""
    port: int = 502
    device: str = ""
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


def parse_modbus_endpoint(text: str) -> ModbusEndpoint:
    """``tcp://host:port`` or ``rtu:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1``."""
    parts = urlsplit(text)
    if parts.scheme == "tcp":
        if not parts.hostname:
            raise ValueError(f"{text!r}: a TCP endpoint needs a host (tcp://10.20.0.5:502)")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"{text!r}: a TCP endpoint is only tcp://host:port")
        try:
            port = parts.port or 502
        except ValueError:
            raise ValueError(f"{text!r}: the port is not a number from 1 to 65535") from None
        return ModbusEndpoint(scheme="tcp", host=parts.hostname, port=port)
    if parts.scheme == "rtu":
        if not parts.path or parts.netloc:
            raise ValueError(f"{text!r}: an RTU endpoint is rtu:///dev/ttyUSB0?baudrate=9600")
        known = {"baudrate", "parity", "stopbits", "bytesize"}
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - known)
        if unknown:
            raise ValueError(f"{text!r}: unknown serial option(s) {', '.join(unknown)}")
        options: dict[str, Any] = {}
        for key, value in query.items():
            options[key] = value.upper() if key == "parity" else _int(text, key, value)
        return ModbusEndpoint(scheme="rtu", device=parts.path, **options)
    raise ValueError(
        f"{text!r}: a Modbus endpoint starts with tcp:// or rtu:// "
        "(tcp://10.20.0.5:502, rtu:///dev/ttyUSB0?baudrate=9600)"
    )


def _int(text: str, key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{text!r}: {key}={value!r} is not a whole number") from None


class DeviceBase(_Model):
    """What every device profile has, whatever the protocol."""

    site: str
    field: str
    device: str
    endpoint: str
    poll_interval: Duration = 1.0
    slow_poll_interval: Duration | None = Field(
        default=None, description="interval of the slow poll class; 10 x poll_interval if unset"
    )
    timeout: Duration = 2.0
    description: str = ""

    @field_validator("site", "field", "device")
    @classmethod
    def _token(cls, value: str) -> str:
        if not TOKEN.match(value):
            raise ValueError(
                f"{value!r} must be lower case letters, digits, - and _ (it is a NATS "
                "subject token: no dots, spaces or wildcards)"
            )
        return value

    @property
    def slow_interval(self) -> float:
        return self.slow_poll_interval or self.poll_interval * 10

    def interval_of(self, point: PointBase) -> float:
        """Seconds between two reads of ``point``."""
        if point.interval is not None:
            return point.interval
        return self.poll_interval if point.poll == "fast" else self.slow_interval

    @model_validator(mode="after")
    def _unique_names(self) -> DeviceBase:
        seen: set[str] = set()
        for point in self.points:  # type: ignore[attr-defined]
            if point.name in seen:
                raise ValueError(f"point name {point.name!r} is used twice")
            seen.add(point.name)
        return self


class ModbusDevice(DeviceBase):
    protocol: Literal["modbus"]
    unit_id: int = Field(default=1, ge=0, le=255)
    retries: int = Field(default=2, ge=0, le=10)
    max_gap: int = Field(
        default=16, ge=0, le=MAX_READ_REGISTERS, description="unused registers a read may span"
    )
    max_registers: int = Field(default=MAX_READ_REGISTERS, ge=1, le=MAX_READ_REGISTERS)
    max_bits: int = Field(default=MAX_READ_BITS, ge=1, le=MAX_READ_BITS)
    points: list[ModbusPoint] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parse_modbus_endpoint(value)
        return value

    @property
    def connection(self) -> ModbusEndpoint:
        return parse_modbus_endpoint(self.endpoint)

    @model_validator(mode="after")
    def _no_overlap(self) -> ModbusDevice:
        # Each table is its own address space. Bools addressing single bits of one register
        # may share it; anything else that shares a register would decode the same bytes
        # twice under two names, which is always a wiring mistake.
        owners: dict[tuple[Function, int], list[ModbusPoint]] = defaultdict(list)
        for point in self.points:
            for address in range(point.address, point.address + point.width):
                for other in owners[(point.function, address)]:
                    if point.bit is None or other.bit is None or point.bit == other.bit:
                        raise ValueError(
                            f"points {other.name!r} and {point.name!r} overlap at "
                            f"{point.function} address {address}"
                        )
                owners[(point.function, address)].append(point)
        for point in self.points:
            if point.width > self.max_registers and not point.function.is_bits:
                raise ValueError(
                    f"point {point.name!r} needs {point.width} registers but max_registers "
                    f"is {self.max_registers}"
                )
        return self


DEFAULT_TRUST_FOLDER = Path("trusted-servers")
"""Where the certificates of trusted OPC-UA servers are kept, beside the profile, unless the
profile's ``security.trusted_servers`` names another folder."""


class OpcuaSecurity(_Model):
    """``policy: None`` must be written out: an unencrypted session is never a default.

    With a secure policy the server is authenticated too: its certificate must be the pinned
    ``server_cert``, or be (or be issued by) a certificate in the ``trusted_servers`` folder.
    ``trust_on_first_use`` stores the certificate a server presents the first time into that
    folder and refuses a different one later; it is off unless written out.
    """

    policy: Literal["None", "Basic256Sha256"]
    mode: Literal["None", "Sign", "SignAndEncrypt"]
    cert: Path | None = None
    key: Path | None = None
    server_cert: Path | None = None
    trusted_servers: Path | None = Field(
        default=None, description="folder of trusted server or CA certificates"
    )
    trust_on_first_use: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def trust_folder(self) -> Path:
        return self.trusted_servers or DEFAULT_TRUST_FOLDER

    @field_validator("policy", "mode", mode="before")
    @classmethod
    def _none_is_a_word(cls, value: Any) -> Any:
        # YAML reads a bare ``None`` as a string, but ``null``/``~`` as no value at all.
        return "None" if value is None else value

    @model_validator(mode="after")
    def _consistent(self) -> OpcuaSecurity:
        if self.policy == "None" and self.mode != "None":
            raise ValueError(f"mode {self.mode} needs policy Basic256Sha256, not None")
        if self.policy != "None":
            if self.mode == "None":
                raise ValueError("policy Basic256Sha256 needs mode Sign or SignAndEncrypt")
            if self.cert is None or self.key is None:
                raise ValueError("policy Basic256Sha256 needs the agent's cert and key files")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.policy == "None" and (self.trust_on_first_use or self.trusted_servers):
            raise ValueError(
                "policy None has no server certificate to trust: drop trusted_servers and "
                "trust_on_first_use, or use Basic256Sha256"
            )
        if self.trust_on_first_use and self.server_cert is not None:
            raise ValueError(
                "server_cert pins one certificate; trust_on_first_use would accept another: "
                "give one of them"
            )
        return self


class OpcuaPoint(PointBase):
    node: str
    sampling_interval: Duration | None = Field(
        default=None, description="server-side sampling for subscribe mode; poll interval if unset"
    )

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        from asyncua import ua

        if not re.match(r"^(ns=\d+;)?[isgb]=.+$", value):
            raise ValueError(f"node {value!r} is not a node id like ns=2;s=Station1.pH or ns=2;i=7")
        try:
            ua.NodeId.from_string(value)
        except Exception as exc:
            raise ValueError(f"node {value!r} is not a valid node id: {exc}") from None
        return value


class OpcuaDevice(DeviceBase):
    protocol: Literal["opcua"]
    mode: Literal["subscribe", "poll"] = "subscribe"
    security: OpcuaSecurity
    max_nodes_per_read: int = Field(default=500, ge=1)
    points: list[OpcuaPoint] = Field(min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "opc.tcp" or not parts.hostname:
            raise ValueError(
                f"{value!r}: an OPC-UA endpoint is opc.tcp://host:port/path "
                "(opc.tcp://10.20.0.7:4840/station)"
            )
        return value


DeviceProfile = Annotated[ModbusDevice | OpcuaDevice, Field(discriminator="protocol")]
_ADAPTER: TypeAdapter[ModbusDevice | OpcuaDevice] = TypeAdapter(DeviceProfile)


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn a pydantic location into words an engineer recognises: the point's name."""
    parts = list(loc)
    if parts and parts[0] in ("modbus", "opcua"):
        parts = parts[1:]
    if len(parts) >= 2 and parts[0] == "points" and isinstance(parts[1], int):
        index = parts[1]
        name = None
        if isinstance(data, Mapping):
            points = data.get("points")
            if isinstance(points, list) and index < len(points):
                point = points[index]
                name = point.get("name") if isinstance(point, Mapping) else None
        label = f"point {name!r} (points[{index}])" if name else f"points[{index}]"
        rest = ".".join(str(part) for part in parts[2:])
        return f"{label}{': ' + rest if rest else ''}"
    return ".".join(str(part) for part in parts) or "profile"


def _problems(error: ValidationError, data: Any) -> list[str]:
    problems = []
    for item in error.errors():
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        message = message.removeprefix("Value error, ")
        if item["type"] == "union_tag_invalid":
            message = "protocol must be modbus or opcua"
        elif item["type"] == "union_tag_not_found":
            message = "protocol is missing (modbus or opcua)"
        problems.append(f"{_where(item['loc'], data)}: {message}")
    return problems


def parse_profile(
    data: Any, source: str = "<profile>", *, known_fields: Iterable[str] | None = None
) -> ModbusDevice | OpcuaDevice:
    """Validate an already-parsed profile mapping (a plugin's template, or a YAML document)."""
    try:
        profile = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ProfileError(source, _problems(exc, data)) from None
    if known_fields is not None:
        fields = sorted(known_fields)
        if profile.field not in fields:
            known = ", ".join(fields)
            raise ProfileError(
                source, [f"field: {profile.field!r} is not an installed field ({known})"]
            )
    return profile


def load_profile(
    path: str | Path, *, known_fields: Iterable[str] | None = None
) -> ModbusDevice | OpcuaDevice:
    """Read and validate one profile file. Certificate and key paths are resolved against
    the profile's folder and must exist."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(str(path), [f"{where}invalid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ProfileError(str(path), ["the file must hold one mapping (site, field, device, …)"])
    profile = parse_profile(data, str(path), known_fields=known_fields)
    if isinstance(profile, OpcuaDevice):
        profile = _resolve_security_files(profile, path)
    return profile


def _resolve_security_files(profile: OpcuaDevice, path: Path) -> OpcuaDevice:
    security = profile.security
    resolved: dict[str, Path] = {}
    missing = []
    for key in ("cert", "key", "server_cert"):
        value: Path | None = getattr(security, key)
        if value is None:
            continue
        full = value if value.is_absolute() else (path.parent / value)
        if not full.is_file():
            missing.append(f"security.{key}: file {full} does not exist")
        resolved[key] = full
    if missing:
        raise ProfileError(str(path), missing)
    if security.policy != "None":
        # the folder need not exist yet: the refusal of an unknown server says where it is
        folder = security.trust_folder
        resolved["trusted_servers"] = folder if folder.is_absolute() else path.parent / folder
    return profile.model_copy(update={"security": security.model_copy(update=resolved)})
