"""SWIFT MT940 customer statements, read with PyPI `mt-940` (tags, amounts with decimal commas, dates).

The file is split into its statements (each starts at `:20:`) so that every statement keeps its own
account and balances. The `:86:` text is read here: German banks structure it with `?20`..`?63`
subfields and SEPA keywords (`SVWZ+`, `EREF+`), Dutch banks with `/NAME/`, `/REMI/`, `/EREF/`;
the library's own `:86:` processor joins the payer's account into the name, so it is not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import mt940

from ..errors import InputError
from .statement import Keys, Statement, Transaction, clean, reference

_STATEMENT_START = re.compile(r"^:20:", re.MULTILINE)
_TAG = re.compile(r"^:(\d\d[A-Z]?):", re.MULTILINE)
_SUBFIELD = re.compile(r"\?(\d\d)")
_SEPA_KEY = re.compile(r"\b(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC)\+")
_DUTCH = re.compile(r"/(NAME|REMI|EREF|IBAN|BIC|TRCD|CSID|MARF|ORDP|BENM|ADDR|ISDT|RTRN)/")


def looks_like(text: str) -> bool:
    """MT940 by content: a `:20:` and a `:25:` tag at line starts, and a balance or a transaction."""
    tags = set(_TAG.findall(text))
    return "20" in tags and "25" in tags and bool(tags & {"60F", "60M", "61"})


def has_tags(text: str) -> bool:
    """Two or more lines that start with an MT940 tag (`:61:`, `:60F:`...): MT940, whole or not."""
    return len(_TAG.findall(text, 0, 8192)) >= 2 or bool(re.match(r"\s*:\d\d[A-Z]?:", text))


def decode(data: bytes) -> str:
    """SWIFT text is ASCII in theory; banks send UTF-8 or Latin-1 in practice."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


class Mt940Reader:
    def __init__(self, data: bytes, name: str):
        self.text = decode(data)
        self.name = name
        self.statements: list[Statement] = []
        self.format = "MT940"

    def transactions(self) -> Iterator[Transaction]:
        starts = [m.start() for m in _STATEMENT_START.finditer(self.text)]
        present = sorted(set(_TAG.findall(self.text)))
        if not starts or not looks_like(self.text):
            raise InputError(
                "not a complete MT940 statement: a statement starts with :20: and names its account in "
                f":25: before its balances (:60F:) and transactions (:61:); this file has only "
                f"{', '.join(':' + t + ':' for t in present) or 'no MT940 tags'}"
            )
        keys = Keys()
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(self.text)
            yield from self._statement(self.text[start:end], n + 1, keys)

    def _statement(self, chunk: str, number: int, keys: Keys) -> Iterator[Transaction]:
        parsed = mt940.models.Transactions(
            processors={"pre_statement": [mt940.processors.date_fixup_pre_processor]}
        )
        try:
            parsed.parse(chunk)
        except Exception as exc:  # the library raises bare exceptions for bad tags
            raise InputError(f"statement {number}: not valid MT940 ({type(exc).__name__}: {exc})") from None
        data = parsed.data
        account = clean(data.get("account_identification"))
        if not account:
            raise InputError(f"statement {number} has no :25: account identification")
        opening = data.get("final_opening_balance") or data.get("intermediate_opening_balance")
        closing = data.get("final_closing_balance") or data.get("intermediate_closing_balance")
        statement = Statement(
            "MT940",
            id="/".join(x for x in (clean(data.get("transaction_reference")), data.get("statement_number")) if x),
            account=account,
            currency=opening.amount.currency if opening is not None else "",
            opening=opening.amount.amount if opening is not None else None,
            closing=closing.amount.amount if closing is not None else None,
        )
        self.statements.append(statement)
        index = len(self.statements) - 1
        for position, item in enumerate(parsed, start=1):
            d: dict[str, Any] = item.data
            mark = d.get("status") or ""
            amount = abs(Decimal(d["amount"].amount))
            direction = "credit" if mark in ("C", "RD") else "debit"
            statement.book(direction, amount, "booked")  # type: ignore[arg-type]
            details = _details(d.get("transaction_details") or "")
            customer_ref = reference(d.get("customer_reference"))
            tx = Transaction(
                f"statement {number}, transaction {position}",
                index,
                direction,  # type: ignore[arg-type]
                amount,
                d["amount"].currency or statement.currency,
                reversal=mark.startswith("R"),
                booking_date=_date(d.get("entry_date")) or _date(d.get("date")),
                value_date=_date(d.get("date")),
                bank_reference=reference(d.get("bank_reference")),
                position=position,
                end_to_end=details.get("eref", "") or customer_ref,
                payer_name=details.get("name", ""),
                payer_account=details.get("iban", ""),
                text=details.get("text", ""),
                bank_code=clean(d.get("id")),
            )
            keys.assign(tx, account)
            yield tx
        statement.tie_out()


def _date(value: Any) -> date | None:
    return date(value.year, value.month, value.day) if value is not None else None


def _details(raw: str) -> dict[str, str]:
    """The payer and the remittance text from a `:86:` field, whichever way the bank structured it."""
    text = raw.replace("\r", "").replace("\n", "")
    if _SUBFIELD.search(text[:6]):
        return _german(text)
    if _DUTCH.search(text):
        return _dutch(text)
    return {"text": clean(raw)}


def _german(text: str) -> dict[str, str]:
    fields: dict[str, list[str]] = {}
    parts = _SUBFIELD.split(text)
    for code, value in zip(parts[1::2], parts[2::2], strict=False):
        fields.setdefault(code, []).append(value)
    purpose = "".join(v for c in [*map(str, range(20, 30)), *map(str, range(60, 64))] for v in fields.get(c, []))
    out = {
        "name": clean(" ".join(fields.get("32", []) + fields.get("33", []))),
        "iban": clean("".join(fields.get("31", []))).replace(" ", ""),
    }
    pieces = _SEPA_KEY.split(purpose)
    if len(pieces) > 1:
        keyed = dict(zip(pieces[1::2], pieces[2::2], strict=False))
        out["eref"] = reference(keyed.get("EREF"))
        out["text"] = clean(keyed.get("SVWZ") or pieces[0])
        if keyed.get("IBAN") and not out["iban"]:
            out["iban"] = clean(keyed["IBAN"]).replace(" ", "")
    else:
        out["text"] = clean(purpose)
    return out


def _dutch(text: str) -> dict[str, str]:
    pieces = _DUTCH.split(text)
    keyed: dict[str, str] = {}
    for code, value in zip(pieces[1::2], pieces[2::2], strict=False):
        keyed.setdefault(code, clean(value))
    return {
        "name": keyed.get("NAME", ""),
        "iban": keyed.get("IBAN", "").replace(" ", ""),
        "eref": reference(keyed.get("EREF")),
        "text": keyed.get("REMI", "") or clean(pieces[0]),
    }
