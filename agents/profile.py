"""Device profiles: the YAML file a SCADA engineer writes for one field device.

The format is a contract (docs/architecture.md, "Device profiles"); this module and the
models it names are the one place that knows it. A profile is checked completely at load
time, before any socket is opened, so that an engineer on site sees every mistake at once
with the file, the point and the reason, rather than a decoding surprise at 3 a.m. Unknown
keys are mistakes too: a misspelt ``word_ordr`` silently falling back to the default is
exactly the byte-order bug that gateways are known for.

What lives where (every name is importable from here):

- this module: reading and checking a file or a mapping (:func:`load_profile`,
  :func:`parse_profile`) and saying what is wrong with it (:class:`ProfileError`);
- :mod:`~smartcity.agents.profile_base`: what every point and device has, and durations;
- :mod:`~smartcity.agents.profile_modbus`: registers, types, byte order, endpoints;
- :mod:`~smartcity.agents.profile_opcua`: nodes and the session's security.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from smartcity.agents.profile_base import (
    POINT_NAME,
    TOKEN,
    DeviceBase,
    Duration,
    PointBase,
    parse_duration,
)
from smartcity.agents.profile_modbus import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    DataType,
    Function,
    ModbusDevice,
    ModbusEndpoint,
    ModbusPoint,
    Order,
    parse_modbus_endpoint,
)
from smartcity.agents.profile_opcua import (
    DEFAULT_TRUST_FOLDER,
    OpcuaDevice,
    OpcuaPoint,
    OpcuaSecurity,
)

__all__ = [
    "DEFAULT_TRUST_FOLDER",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "POINT_NAME",
    "TOKEN",
    "DataType",
    "DeviceBase",
    "DeviceProfile",
    "Duration",
    "Function",
    "ModbusDevice",
    "ModbusEndpoint",
    "ModbusPoint",
    "OpcuaDevice",
    "OpcuaPoint",
    "OpcuaSecurity",
    "Order",
    "PointBase",
    "ProfileError",
    "load_profile",
    "parse_duration",
    "parse_modbus_endpoint",
    "parse_profile",
]


class ProfileError(ValueError):
    """A profile that cannot be used. ``problems`` holds one line per mistake."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{source}: invalid device profile\n{lines}")


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
