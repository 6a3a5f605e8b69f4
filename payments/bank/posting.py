"""What is posted for a bank credit: one customerPayment per invoice it pays (one on account), in the
target's form (a credit: negative), carrying the bank's reference and the payer's text within
Business Central's lengths, under ledger keys derived from the bank transaction's key.

Amounts are the bank's, exactly: a credit paying several invoices is split into their remaining
amounts, the last taking what is left, so the parts always add up to the credit to the cent.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from .receivables import Customer, Invoice
from .statement import clean

DESCRIPTION, COMMENT, EXTERNAL, DOCUMENT = 100, 250, 35, 20  # Text[100], Text[250], Code[35], Code[20]


@dataclass(frozen=True, slots=True)
class Credit:
    """The facts of one credit that posting needs (from a statement, or a review file's record)."""

    key: str
    location: str
    amount: Decimal
    currency: str
    booking_date: str  # ISO date, or ""
    bank_reference: str
    end_to_end: str
    payer_name: str
    text: str
    problem: str = ""  # why the bank's own description of it cannot be trusted (never posted then)
    identity: dict[str, Any] | None = None  # identity.Identity as JSON: how the register knows it
    part: int = 0  # n: the n-th line of the credit's fixed plan, refused and decided again on its own

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "location": self.location,
            "amount": self.amount,
            "currency": self.currency,
            "bookingDate": self.booking_date,
            "bankReference": self.bank_reference,
            "endToEnd": self.end_to_end,
            "payerName": self.payer_name,
            "text": self.text,
            "problem": self.problem,
            **({"identity": self.identity} if self.identity is not None else {}),
            **({"part": self.part} if self.part else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credit:
        return cls(
            str(data["key"]),
            str(data["location"]),
            Decimal(data["amount"]),
            str(data["currency"]),
            str(data["bookingDate"]),
            str(data["bankReference"]),
            str(data["endToEnd"]),
            str(data["payerName"]),
            str(data["text"]),
            str(data.get("problem", "")),
            data.get("identity"),
            int(data.get("part", 0)),
        )


def part_key(key: str, part: int) -> str:
    """The ledger key of a credit's n-th payment (the first is the transaction's own key)."""
    return key if part == 1 else f"{key}.{part}"


def whole_key(key: str, part: int) -> str:
    """The key of the credit whose n-th payment has the ledger key `key` (part_key's inverse)."""
    return key if part <= 1 else key.removesuffix(f".{part}")


def _cut(text: str, limit: int) -> str:
    text = clean(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def document_number(key: str) -> str:
    """A Code[20] derived from the bank transaction alone: the same whenever it is read again."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return "BK" + base64.b32encode(digest).decode("ascii")[:18]


def payloads(
    credit: Credit,
    customer: Customer,
    invoices: tuple[Invoice, ...],
    left: tuple[Decimal, ...],
    *,
    document_numbers: Literal["series", "bank"] = "series",
) -> list[dict[str, Any]]:
    """The customerPayments for a credit applied to `invoices` of `customer` (none: on account); `left`
    is what each invoice still waits for: every invoice but the last takes that, the last the rest."""
    parts: list[tuple[Decimal, Invoice | None]]
    if not invoices:
        parts = [(credit.amount, None)]
    else:
        parts = [(v, i) for i, v in zip(invoices[:-1], left[:-1], strict=True)]
        parts.append((credit.amount - sum((p for p, _ in parts), Decimal(0)), invoices[-1]))
    reference = credit.bank_reference or credit.end_to_end
    description = _cut(" ".join(x for x in (credit.payer_name, credit.text) if x) or reference, DESCRIPTION)
    comment = _cut(
        "; ".join(
            x
            for x in (
                f"bank {credit.bank_reference}" if credit.bank_reference else "",
                f"end-to-end {credit.end_to_end}" if credit.end_to_end else "",
                credit.text,
            )
            if x
        ),
        COMMENT,
    )
    out = []
    for amount, invoice in parts:
        payload: dict[str, Any] = {"customerNumber": customer.number, "amount": -amount}
        if credit.booking_date:
            payload["postingDate"] = credit.booking_date
        if document_numbers == "bank":
            payload["documentNumber"] = document_number(credit.key)
        if reference:
            payload["externalDocumentNumber"] = reference[:EXTERNAL]
        if invoice is not None:
            if invoice.id:
                payload["appliesToInvoiceId"] = invoice.id
            payload["appliesToInvoiceNumber"] = invoice.number
        if description:
            payload["description"] = description
        if comment:
            payload["comment"] = comment
        out.append(payload)
    return out
