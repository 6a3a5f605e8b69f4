"""What identifies a payment: its ledger key, its fingerprint and its natural key at the target.

Without an Idempotency-Key the same payment in the same journal is the same key, so two genuinely
identical payments count as one (see docs/exactly-once.md). Keys and fingerprints come from one
canonical form.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, NamedTuple

from .. import codec
from .entry import Scope

_CODE_FIELDS = ("customerNumber", "documentNumber", "externalDocumentNumber", "appliesToInvoiceNumber")


class Digest(NamedTuple):
    """A payment's derived ledger key and its fingerprint (what the payment says, wherever it goes)."""

    key: str
    fingerprint: str


def canonical(payload: dict[str, Any]) -> bytes:
    """The payment as the target will see it, so equal payments compare equal: amounts by value
    (10.10 == 10.1), Code fields upper-case (Business Central stores them so), keys sorted."""
    norm: dict[str, Any] = {}
    for name, value in payload.items():
        kind = type(value)
        if kind is str:
            if name in _CODE_FIELDS:
                value = value.upper()
        elif kind is Decimal or kind is int or (isinstance(value, Decimal | int) and kind is not bool):
            value = exact_text(Decimal(value))
        elif isinstance(value, str) and name in _CODE_FIELDS:
            value = value.upper()
        norm[name] = value
    return codec.dumpb(norm, sort_keys=True)


def exact_text(value: Decimal) -> str:
    """A number's value in positional digits, trailing zeros dropped (10.10 -> 10.1, 1E+2 -> 100):
    exact for every value, unlike normalize(), which rounds to the context's 28 digits and so would
    make two different amounts one. Called on amounts the model accepted (bounded digits and range)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()


def digest(scope: Scope, payload: dict[str, Any]) -> Digest:
    """The derived key and the fingerprint of a payment, from one canonical form."""
    text = canonical(payload)
    return Digest(
        "p-" + hashlib.sha256(scope.partition.encode("utf-8") + b"|" + text).hexdigest(),
        hashlib.sha256(text).hexdigest(),
    )


def derived_key(scope: Scope, payload: dict[str, Any]) -> str:
    """The key of a payment sent without Idempotency-Key."""
    return digest(scope, payload).key


def caller_key(scope: Scope, caller: str, idempotency_key: str, index: int | None = None) -> str:
    """The key for a caller's Idempotency-Key (per item of a batch): the caller's own, so that another
    caller sending the same text neither reads its answer nor blocks its payment (`ledger.callers`)."""
    text = codec.dumpb([scope.partition, caller, idempotency_key, index])
    return "c-" + hashlib.sha256(text).hexdigest()


def former_key(scope: Scope, idempotency_key: str, index: int | None = None) -> str:
    """The key an Idempotency-Key had before keys were the caller's, shared by every caller: only looked
    up, for entries written then (`ledger.callers`), never written."""
    suffix = "" if index is None else f"#{index}"
    return "k-" + hashlib.sha256(f"{scope.partition}|{idempotency_key}{suffix}".encode()).hexdigest()


def natural_key(payload: dict[str, Any]) -> dict[str, str]:
    """What identifies a payment at the target when we must look for it (all as text)."""
    out: dict[str, str] = {}
    for name in ("documentNumber", "externalDocumentNumber", "customerNumber", "customerId"):
        if payload.get(name):
            out[name] = str(payload[name])
    if "amount" in payload:
        out["amount"] = codec.format_decimal(Decimal(payload["amount"]))
    return out
