"""A bank credit's identity and the rule for when two readings are one credit (payments.bank.identity):
the facts compared, and what each verdict rests on. The end-to-end cases (camt.054 then camt.053, MT940,
two journals) are in tests/storage/test_bank_once.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from payments.bank.identity import Identity, account_id, compare, family, identity_of
from payments.bank.statement import Statement, Transaction


def _reading(fmt: str = "camt.053.001.08", **tx) -> Identity:
    statement = Statement(fmt, account="DE89 3704 0044 0532 0130 00")
    fields = {
        "location": "x",
        "statement": 0,
        "direction": "credit",
        "amount": Decimal("150.00"),
        "currency": "EUR",
        "booking_date": date(2026, 11, 30),
        "value_date": date(2026, 11, 30),
        "key": "bank-1",
        **tx,
    }
    return identity_of(Transaction(**fields), statement)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("DE89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("de89370400440532013000", "DE89370400440532013000"),
        ("37040044/0532013000", "DE89370400440532013000"),  # a German MT940's :25:
        ("37040044/532013000", "DE89370400440532013000"),
        ("0123456789", "0123456789"),  # a BAI2 account number stays as it is
    ],
)
def test_an_account_is_one_whatever_the_format_wrote(written, expected):
    assert account_id(written) == expected


def test_families_of_formats():
    assert [family(f) for f in ("camt.054.001.02", "camt.053.001.08", "MT940", "BAI2")] == [
        "camt",
        "camt",
        "mt940",
        "bai2",
    ]


def test_the_banks_reference_decides_within_a_family():
    a = _reading(bank_reference="ACR-1")
    assert compare(a, replace(a, key="bank-2"))[0] == "same"
    assert compare(a, replace(a, reference="ACR-2")) == ("different", "another bank reference")


def test_references_of_two_families_are_not_compared():
    """A bank's MT940 reference is another number than its camt AcctSvcrRef for the same credit."""
    camt = _reading(bank_reference="ACR-1", payer_account="DE02120300000000202051")
    mt940 = _reading("MT940", bank_reference="9912345", payer_account="DE02120300000000202051")
    assert compare(mt940, camt) == ("same", "the same payer account")


@pytest.mark.parametrize(
    ("change", "verdict"),
    [
        ({"amount": Decimal("150.01")}, "different"),
        ({"currency": "CHF"}, "different"),
        ({"booking_date": date(2026, 12, 1)}, "different"),
        ({"value_date": date(2026, 12, 1)}, "different"),
        ({"payer_account": "DE75512108001245126199"}, "different"),
        ({"end_to_end": "E2E-OTHER"}, "different"),
        ({"payer_account": ""}, "same"),  # the camt.054 lacked the account; the end-to-end id agrees
    ],
)
def test_facts_both_readings_have_must_agree(change, verdict):
    registered = _reading(payer_account="DE02120300000000202051", end_to_end="E2E-1")
    reading = _reading(**{"payer_account": "DE02120300000000202051", "end_to_end": "E2E-1", **change})
    assert compare(reading, registered)[0] == verdict


def test_nothing_that_tells_them_apart_is_uncertain():
    registered = _reading(text="Rechnung 4711")
    assert compare(_reading(text="Rg. 4711 vielen Dank"), registered) == (
        "maybe",
        "nothing that tells them apart",
    )
    assert compare(_reading(text="Rechnung  4711"), registered) == ("same", "the same text")


def test_names_agree_on_what_every_format_keeps():
    """MT940 writes names in 27-character subfields, transliterated (ä → ae)."""
    camt = _reading(payer_name="Müller Großhandel und Söhne Aktiengesellschaft")
    mt940 = _reading("MT940", payer_name="Mueller Grosshandel und So")
    assert compare(mt940, camt) == ("same", "the same payer name")


def test_what_is_kept_of_payers_is_digests_not_values():
    kept = _reading(payer_account="DE02120300000000202051", payer_name="Karl Kaufmann", text="SI-4711")
    text = str(kept.to_json())
    assert "DE0212" not in text and "Kaufmann" not in text and "4711" not in text
    assert Identity.from_json(kept.to_json()) == kept


def test_an_amount_is_one_however_many_zeros_the_format_wrote():
    assert _reading(amount=Decimal("150")).amount == _reading(amount=Decimal("150.00")).amount == "150"
