"""JSON with exact decimals, the sandbox's own (it never imports the relay's `payments`).

Numbers with a fraction or exponent are read as `Decimal` (so the sandbox never holds a float) and
written back with exactly their digits, as Business Central keeps an amount as sent.
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


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"cannot write {value!r} as JSON")


def _wide(value: Any) -> Any:
    """A copy with integers beyond 64 bits as Decimals of the same digits (and keys as plain text)."""
    if isinstance(value, dict):
        return {str(key): _wide(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wide(item) for item in value]
    if type(value) is int and not -(2**63) <= value < 2**64:
        return Decimal(value)
    return value


def dumpb(value: Any) -> bytes:
    """Compact UTF-8 JSON; Decimals with exactly their digits, integers of any size."""
    try:
        return orjson.dumps(value, default=_decimal)
    except orjson.JSONEncodeError:
        # orjson writes integers of up to 64 bits only; a client may send a 30-digit amount.
        return orjson.dumps(_wide(value), default=_decimal)


def dumps(value: Any) -> str:
    return dumpb(value).decode("utf-8")
