"""An amount read exactly: a JSON number (already a Decimal from the codec), an integer or decimal
text, never a binary float; within Business Central's AL Decimal; at most the allowed places, counted
from the digits as sent (never under arithmetic that rounds); with the sign the relay's callers use."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

# Business Central keeps amounts in an AL Decimal: at most ±999,999,999,999,999.99 (REFERENCE 2).
AMOUNT_MAX = Decimal("999999999999999.99")
AMOUNT_MIN = -AMOUNT_MAX

# ASCII digits only: `\d` (and Decimal(), int(), date parsing) also take every other script's digits,
# so "１２.００" or "1٠50" (U+0660, which looks like a dot) would pass as numbers.
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)")
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]{1,3}(?:\.[0-9]{3})+,[0-9]+|[+-]?[0-9]+,[0-9]+")
# An amount within the AL Decimal range with at most 10 places has at most 25 significant digits;
# beyond this many digits it is refused before any arithmetic is done with it.
AMOUNT_MAX_DIGITS = 40


def parse_amount(value: Any, *, decimals: int, sign: Literal["negative", "positive"]) -> Decimal:
    """The amount `value` holds, exactly; a ValueError saying why not (which the contract reports)."""
    kind = type(value)
    if kind is Decimal:  # what the JSON codec produces: the common case first
        amount = value
    elif kind is int:
        amount = Decimal(value)
    elif kind is str:
        amount = _amount_text(value)
    elif kind is bool:
        raise ValueError("must be a number, not true/false")
    elif kind is float:
        raise ValueError(
            "arrived as binary floating point, which cannot hold money exactly; send decimal text"
        )
    else:
        raise ValueError("must be a decimal number")
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    if not amount:
        raise ValueError("must not be zero")
    # Decided from the number's own digits and exponent, never under a context that rounds (the
    # default one keeps 28 digits: normalize() would make 1.000000000000000000000000000001 into 1).
    _, digits, exponent = amount.as_tuple()
    if len(digits) > AMOUNT_MAX_DIGITS:
        raise ValueError(
            f"has {len(digits)} digits; an amount has at most {AMOUNT_MAX_DIGITS} "
            "(it is never cut or rounded)"
        )
    if not AMOUNT_MIN <= amount <= AMOUNT_MAX:  # exact comparisons, whatever the exponent
        raise ValueError(
            "is beyond what Business Central can hold (an AL Decimal: -999999999999999.99 to "
            "999999999999999.99); it is never cut or rounded: correct it or split the payment"
        )
    limit = decimals
    if -exponent > limit:  # type: ignore[operator]
        trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
        places = -exponent - trailing_zeros  # type: ignore[operator]  # 1.500 has one place
        if places > limit:
            raise ValueError(
                f"has {places} decimal places; at most {limit} are allowed "
                "(it is never rounded: send it exactly)"
            )
    if amount.is_signed() is not (sign == "negative"):
        raise ValueError(_wrong_sign(amount, sign))
    return amount


def _wrong_sign(amount: Decimal, sign: str) -> str:
    digits = format(abs(amount), "f")  # bounded: the range was checked first
    if sign == "negative":
        return (
            "is positive, but Business Central records a customer payment as a credit, a negative amount "
            '(posting the journal refuses a positive one: "Amount must be negative"); send '
            f"-{digits}, or set PAYMENTS_AMOUNT_SIGN=positive to write payments as money received"
        )
    return (
        "is negative, but PAYMENTS_AMOUNT_SIGN=positive: payments are written as money received (the "
        f"relay sends them as credits); send {digits}"
    )


def _amount_text(value: str) -> Decimal:
    text = value.strip()
    if _DECIMAL_COMMA.fullmatch(text):
        raise ValueError(
            f"{value!r} uses a decimal comma; write amounts with a decimal point and no "
            "thousands separator, e.g. 1234.56"
        )
    if not _DECIMAL_TEXT.fullmatch(text):
        if any(c.isdigit() and not "0" <= c <= "9" for c in text):
            raise ValueError(
                f"{value!r} contains digits other than 0-9 (another script's, or full-width); "
                "write amounts with the ASCII digits 0-9 and a '.'"
            )
        raise ValueError(f"{value!r} is not a decimal number (digits with an optional '.' and sign)")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        raise ValueError(f"{value!r} is not a decimal number") from None
