"""OPC-UA StatusCode → reading quality.

The top two bits of a StatusCode are its severity (OPC 10000-4 §7.39): Good, Uncertain, Bad
(and a reserved value every client must treat as Bad). The reason keeps the symbolic name,
``BadSensorFailure`` or ``UncertainLastUsableValue``, because that is the word a SCADA
engineer searches for in the server's manual. The low 16 bits carry info flags (overflow,
limit bits) that never change the severity, so the name is looked up without them.
"""

from __future__ import annotations

from asyncua import ua

from smartcity.agents.reading import Quality

_SEVERITY = 0xC000_0000
_CODE = 0xFFFF_0000


def status_name(code: int | ua.StatusCode | None) -> str:
    """``BadNodeIdUnknown`` for 0x80340000; ``Bad (0x80AB0000)`` for a code nobody defined."""
    value = _value(code)
    known = ua.status_codes.code_to_name_doc.get(value) or ua.status_codes.code_to_name_doc.get(
        value & _CODE
    )
    if known:
        return known[0]
    return f"{_severity_word(value)} (0x{value:08X})"


def quality_of(code: int | ua.StatusCode | None) -> tuple[Quality, str]:
    """The quality and the reason for a value that came with ``code`` (``None`` is Good)."""
    value = _value(code)
    severity = value & _SEVERITY
    if severity == 0:
        return Quality.GOOD, "" if value & _CODE == 0 else status_name(value)
    if severity == 0x4000_0000:
        return Quality.UNCERTAIN, status_name(value)
    return Quality.BAD, status_name(value)


def _value(code: int | ua.StatusCode | None) -> int:
    if code is None:
        return 0
    return code.value if isinstance(code, ua.StatusCode) else int(code)


def _severity_word(value: int) -> str:
    severity = value & _SEVERITY
    return "Good" if severity == 0 else "Uncertain" if severity == 0x4000_0000 else "Bad"
