"""Amounts hold for every representation: exact digits in, the same value out, never rounded, and the
ledger sees two accepted amounts as one payment only when they are the same number."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import pytest

from payments import codec
from payments.ledger import Scope, digest
from payments.ledger.keys import canonical
from payments.model import Rules, check

SCOPE = Scope("5b1c4a0e-7d3f-4e8a-9c21-3f6d8e0a1b01", "9e2f7c14-1a5b-4d6e-8f30-7c4b2a9d0e02")
CASES = 100_000
SENT_AMOUNT = re.compile(rb'"amount":(-?[0-9][0-9.]*)[,}]')  # positional digits: no exponent, no quotes


def notations(rng: random.Random) -> tuple[bytes, Decimal]:
    """One negative amount, within the AL range and two places, written one of the ways a caller may:
    a JSON integer, a JSON fraction (with trailing zeros or not), a JSON exponent, or a string."""
    whole = rng.randrange(0, 10 ** rng.randint(1, 15))
    cents = rng.randrange(0, 100)
    value = -(Decimal(whole) + Decimal(cents) / 100)
    if not value:
        value = Decimal("-0.01")
    digits = format(-value.quantize(Decimal("0.01")), "f")  # e.g. 12.34 or 12.00
    kind = rng.randrange(5)
    if kind == 0 and value == value.to_integral_value():
        text = "-" + str(int(-value))  # JSON integer
    elif kind == 1:
        text = "-" + digits + "0" * rng.randint(0, 3)  # JSON fraction, trailing zeros kept as sent
    elif kind == 2:
        unscaled = int((-value) * 100)
        shift = rng.randint(0, 4)
        text = f"-{unscaled * 10**shift}E-{2 + shift}"  # JSON exponent, e.g. -123400E-4
    elif kind == 3:
        return codec.dumpb({"customerNumber": "10000", "amount": "-" + digits}), value  # a string
    else:
        text = "-" + digits
    return b'{"customerNumber": "10000", "amount": ' + text.encode() + b"}", value


def test_every_notation_keeps_its_value_exactly_through_model_ledger_and_the_json_sent() -> None:
    rng = random.Random(20261125)
    rules = Rules(from_text=True)
    keys: dict[str, Decimal] = {}
    for _ in range(CASES):
        body, value = notations(rng)
        record = codec.loads(body)
        checked = check(record, rules)
        assert checked.ok, (body, checked.errors)
        [sent_text] = SENT_AMOUNT.findall(codec.dumpb(checked.payment.payload()))
        sent = Decimal(sent_text.decode())
        assert sent == value, body  # the value sent is the value received
        assert sent_text.decode() == format(Decimal(record["amount"]), "f"), body  # the digits as given
        # The ledger: one key per number, whatever the notation (10.10 == 10.1 == 1010E-2).
        key = digest(SCOPE, {"customerNumber": "10000", "amount": sent}).key
        assert keys.setdefault(key, value) == value, body
    assert len(keys) > CASES // 2  # mostly distinct numbers: the check above was not vacuous


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("-1.000000000000000000000000000001", "-1"),  # beyond 28 digits: normalize() made these one
        ("-1.0000000001", "-1.0000000002"),
        ("-999999999999999.99", "-999999999999999.98"),
    ],
)
def test_different_amounts_are_never_one_payment_in_the_ledger(a: str, b: str) -> None:
    assert canonical({"amount": Decimal(a)}) != canonical({"amount": Decimal(b)})


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        ('"-1.000000000000000000000000000001"', "has 30 decimal places; at most 2"),
        ("-1.000000000000000000000000000001", "has 30 decimal places; at most 2"),
        ("-1e-99999999", "has 99999999 decimal places"),
        ("-1e99999999", "beyond what Business Central can hold"),
        ("-1e400", "beyond what Business Central can hold"),
        ("-" + "1" * 41 + "E-30", "has 41 digits; an amount has at most 40"),
        ('"-\uff11\uff12.\uff10\uff10"', "contains digits other than 0-9"),  # full-width 12.00
        ('"-\u0661\u0662.\u0660\u0660"', "contains digits other than 0-9"),  # Arabic-Indic 12.00
        ('"-1\u066050"', "contains digits other than 0-9"),  # U+0660 looks like a dot
    ],
)
def test_absurd_or_look_alike_amounts_are_refused_clearly(sent: str, why: str) -> None:
    checked = check(codec.loads('{"customerNumber": "10000", "amount": ' + sent + "}"), Rules(from_text=True))
    assert not checked.ok
    [error] = checked.errors
    assert error.pointer == "/amount" and why in error.detail


@pytest.mark.parametrize("field", ["postingDate", "lineNumber"])
def test_dates_and_integers_take_ascii_digits_only(field: str) -> None:
    value = "２０２６-１１-２５" if field == "postingDate" else "１０"
    checked = check({"customerNumber": "10000", "amount": "-1", field: value}, Rules(from_text=True))
    assert not checked.ok and [e.pointer for e in checked.errors] == [f"/{field}"]
