"""JSON in and out without binary floating point.

The standard parser turns `12.34` into a float and pydantic's turns large numbers into rounded
integers; both would silently alter money. Here every JSON number with a fraction or exponent
becomes a `Decimal`, and a `Decimal` is written back with exactly its digits.
"""

from __future__ import annotations

import json
import json.encoder
from decimal import Decimal
from typing import Any


class JsonSyntaxError(ValueError):
    """The text is not JSON this relay accepts; the message says where and why."""


class NotUtf8Error(JsonSyntaxError):
    """The bytes are not UTF-8 (JSON exchanged between systems must be, RFC 8259)."""


def _reject_constant(name: str) -> Any:
    raise JsonSyntaxError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A duplicated key would make one of two amounts win silently: refuse it.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise JsonSyntaxError(f"duplicate property {key!r} in one object")
        obj[key] = value
    return obj


def loads(text: str | bytes) -> Any:
    """Parse JSON text (bytes must be UTF-8) with exact decimals and unique keys."""
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotUtf8Error(
                f"not valid UTF-8: byte 0x{text[exc.start]:02x} at offset {exc.start}"
            ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None


def format_decimal(value: Decimal) -> str:
    """Positional notation with the digits as given: 4.20 stays 4.20, 1E+2 becomes 100."""
    return format(value, "f")


_quote = json.encoder.encode_basestring  # the C implementation where available; keeps non-ASCII as is


def _encode(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(_quote(value))
    elif kind is dict:
        out.append("{")
        first = True
        for key, item in value.items():
            if first:
                first = False
            else:
                out.append(",")
            out.append(_quote(key if type(key) is str else str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif kind is Decimal:
        if not value.is_finite():
            raise ValueError("a non-finite Decimal cannot be written as JSON")
        out.append(format_decimal(value))
    elif value is None:
        out.append("null")
    elif kind is bool:
        out.append("true" if value else "false")
    elif kind is int:
        out.append(str(value))
    elif kind is list or kind is tuple:
        out.append("[")
        first = True
        for item in value:
            if first:
                first = False
            else:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(value, float):
        # Nothing in the relay produces floats for JSON; failing loudly keeps it that way.
        raise TypeError("refusing to write a float as JSON: use Decimal")
    elif isinstance(value, str | int | dict | list | tuple | Decimal):  # subclasses
        _encode(_plain(value), out)
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _plain(value: Any) -> Any:
    for base in (bool, str, int, Decimal, dict, list, tuple):
        if isinstance(value, base):
            return base(value)
    return value  # pragma: no cover


def dumps(value: Any) -> str:
    """JSON text for dicts, lists, strings, ints, bools, None and Decimals (never floats)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def dumpb(value: Any) -> bytes:
    return dumps(value).encode("utf-8")
