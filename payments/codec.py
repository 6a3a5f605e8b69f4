"""JSON in and out without binary floating point.

The standard parser turns `12.34` into a float and pydantic's turns large numbers into rounded
integers; both would silently alter money. Here every JSON number with a fraction or exponent
becomes a `Decimal`, and a `Decimal` is written back with exactly its digits.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from .errors import JsonSyntaxError, NotUtf8Error

__all__ = ["JsonSyntaxError", "NotUtf8Error", "dumpb", "dumps", "format_decimal", "loads"]


# A JSON number longer than this is refused before it is converted: Python's int() refuses more than
# 4,300 digits with a ValueError, and a Decimal of a million digits costs time and memory for nothing
# (no payment property needs more than 40).
MAX_NUMBER_CHARS = 100
# Arrays and objects inside one another: a payment is flat, a batch two levels deep. Deeper input is
# refused: the standard parser would recurse up to its limit, and the JSON writer stops at 255 levels
# when an answer or a report echoes it.
MAX_DEPTH = 32
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # \uD800-\uDFFF: only escapes can make a lone one


def _number_too_long(text: str) -> JsonSyntaxError:
    return JsonSyntaxError(
        f"a number written with {len(text)} characters ({text[:20]}…); numbers have at most "
        f"{MAX_NUMBER_CHARS}"
    )


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text)
    return int(text)


def _decimal(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARS:
        raise _number_too_long(text)
    return Decimal(text)


def _lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) holding an unpaired UTF-16 surrogate, which no UTF-8 text can
    carry: it would fail later, when an answer or a report echoes it."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _reject_constant(name: str) -> Any:
    raise JsonSyntaxError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A duplicated key would make one of two amounts win silently: refuse it. (Counting first keeps
    # the common case in C: this runs for every object a caller sends.)
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonSyntaxError(f"duplicate property {key!r} in one object")
            seen.add(key)
    return obj


def loads(text: str | bytes, *, unique_keys: bool = True) -> Any:
    """Parse JSON text (bytes must be UTF-8) with exact decimals and unique keys. `unique_keys=False`
    is for the target's own answers: a Python check per object is a real share of the relay's CPU
    on a `$batch` answer, and what the target says is not a caller's ambiguous input."""
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
        value = json.loads(
            text,
            parse_float=_decimal,
            parse_int=_int,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys if unique_keys else None,
        )
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        value = None
        deep = True
    else:
        deep = unique_keys and _too_deep(value)  # a caller's input (the target's answers are flat)
    if deep:
        raise JsonSyntaxError(f"arrays or objects are nested more than {MAX_DEPTH} deep")
    if _SURROGATE_ESCAPE.search(text) and (bad := _lone_surrogate(value)) is not None:
        where = ascii(bad[:40])
        raise JsonSyntaxError(
            f"the string {where} holds an unpaired UTF-16 surrogate escape; send valid Unicode"
        )
    return value


# Beyond this many places either side of the point, a number is written with its exponent (exact, and
# valid JSON) rather than spelled out: 1E+99999999 from a 12-byte input is not a 100-million-digit line.
POSITIONAL_LIMIT = 64


def format_decimal(value: Decimal) -> str:
    """Positional notation with the digits as given: 4.20 stays 4.20, 1E+2 becomes 100. A number
    that would take more than POSITIONAL_LIMIT digits that way keeps its exponent (1E+400)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and (
        exponent > POSITIONAL_LIMIT or -exponent > POSITIONAL_LIMIT or value.adjusted() > POSITIONAL_LIMIT
    ):
        return str(value)
    return format(value, "f")


def _fragment(value: Any) -> Any:
    """orjson's hook for what it does not write itself: Decimals, with exactly their digits."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("a non-finite Decimal cannot be written as JSON")
        return orjson.Fragment(format_decimal(value))
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _refuse_floats(value: Any) -> None:
    """orjson writes floats without asking: refuse them before, so money cannot go out as one."""
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


_LEAVES = frozenset((str, int, bool, Decimal, type(None)))


def dumpb(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON for dicts, lists, strings, ints, bools, None and Decimals (never floats).

    orjson (C speed; the relay's hot path writes every payment several times) does the writing;
    Decimals go in as raw fragments of their positional digits."""
    _refuse_floats(value)
    option = orjson.OPT_SORT_KEYS if sort_keys else None
    try:
        return orjson.dumps(value, default=_fragment, option=option)
    except orjson.JSONEncodeError as exc:
        cause = exc.__cause__
        if isinstance(cause, TypeError | ValueError):
            raise cause from None
        if "64-bit" not in str(exc) and "key must be str" not in str(exc):
            raise TypeError(str(exc)) from None
    # orjson writes integers of up to 64 bits and plain string keys only; JSON (and a caller's amount
    # of 10**30) has no such limits. The rare value that needs it is written from a plain copy.
    return orjson.dumps(_plain(value), default=_fragment, option=option)


def _plain(value: Any) -> Any:
    """A copy orjson can write: integers beyond 64 bits as Decimals (same digits), keys as plain str."""
    if isinstance(value, dict):
        return {key if type(key) is str else str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return Decimal(value)
    return value


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    return dumpb(value, sort_keys=sort_keys).decode("utf-8")
