"""JSON in and out with exact decimals, the sandbox's own (it never imports the relay's `payments`).

A number with a fraction or exponent is read as a `Decimal`; a `Decimal` is written back with exactly
its digits. The output is byte for byte what the relay's codec writes: compact separators, non-ASCII as
UTF-8, integers of any size, and never a float.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["dumpb", "dumps", "loads"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def loads(text: str) -> Any:
    """Parse JSON text with exact Decimal numbers; NaN and Infinity are a ValueError."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def _fragment(value: Any) -> Any:
    """orjson's hook for what it does not write itself: Decimals, with exactly their digits."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a non-finite Decimal cannot be written as JSON")
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


_LEAVES = frozenset((str, int, bool, Decimal, type(None)))


def _refuse_floats(value: Any) -> None:
    """orjson writes floats without asking: refuse them before, so an amount cannot go out as one."""
    kind = type(value)
    if kind is dict or (kind is not list and kind is not tuple and isinstance(value, dict)):
        items: Any = value.values()
    elif kind is list or kind is tuple or isinstance(value, list | tuple):
        items = value
    elif isinstance(value, float):
        raise TypeError("refusing to write a float as JSON: use Decimal")
    else:
        return
    if set(map(type, items)) <= _LEAVES:  # the common case, decided in C
        return
    for item in items:
        if type(item) not in _LEAVES:
            _refuse_floats(item)


def _plain(value: Any) -> Any:
    """A copy orjson can write: integers beyond 64 bits as Decimals (same digits), keys as plain str."""
    if isinstance(value, dict):
        return {key if type(key) is str else str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return Decimal(value)
    return value


def dumpb(value: Any) -> bytes:
    """Compact UTF-8 JSON for dicts, lists, strings, ints, bools, None and Decimals (never floats)."""
    _refuse_floats(value)
    try:
        return orjson.dumps(value, default=_fragment)
    except orjson.JSONEncodeError as exc:
        cause = exc.__cause__
        if isinstance(cause, TypeError | ValueError):
            raise cause from None
        if "64-bit" not in str(exc) and "key must be str" not in str(exc):
            raise TypeError(str(exc)) from None
    # orjson writes integers of up to 64 bits and plain string keys only; JSON has no such limits.
    return orjson.dumps(_plain(value), default=_fragment)


def dumps(value: Any) -> str:
    """`dumpb` as text."""
    return dumpb(value).decode("utf-8")
