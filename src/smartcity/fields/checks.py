"""The checks every type of the field contract runs on itself when it is built.

A name (metric, KPI, rule, record type) is snake_case; a text is a non-empty string; a number
is a finite int or float, never a bool; an enumerated value is one of its enumeration's
members. Each check returns the normalised value or raises a ``ValueError`` (``TypeError``
for a value of the wrong type) whose message says what the value is, so that a mistake in a
plugin's catalogue names the offending object. The types themselves are in
:mod:`smartcity.fields.model`.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Any, TypeVar

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
"""snake_case: what a metric, KPI, rule or record type is called. It is also a valid NATS
subject token and a valid device-profile point name."""
MAX_NAME_LENGTH = 63
PROFILE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

_E = TypeVar("_E", bound=StrEnum)


def check_member(kind: type[_E], value: Any, what: str) -> _E:
    """``value`` as a member of ``kind``, else a ``ValueError`` listing the members."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{what}: {value!r} is not one of {allowed}") from None


def normalise(obj: object, name: str, value: Any) -> None:
    """Normalise an attribute of a frozen dataclass during ``__post_init__``."""
    object.__setattr__(obj, name, value)


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a snake_case name, else a ``ValueError`` that says ``what`` it is."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if len(value) > MAX_NAME_LENGTH or not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not snake_case (lower-case letters, digits and single "
            f"underscores, starting with a letter, at most {MAX_NAME_LENGTH} characters)"
        )
    return value


def check_text(value: Any, what: str, *, required: bool = True) -> str:
    """``value`` stripped; empty only when it is not ``required``."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"{what} is empty")
    return value.strip()


def check_number(value: Any, what: str, *, optional: bool = False) -> float | None:
    """``value`` as a finite float (``None`` passes when ``optional``); a bool is no number."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, not {value!r}")
    return float(value)


def check_required_number(value: Any, what: str) -> float:
    number = check_number(value, what)
    if number is None:
        raise TypeError(f"{what} must be a number, not None")
    return number
