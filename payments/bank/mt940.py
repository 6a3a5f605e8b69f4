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
_STRUCTURED = re.compile(r"\s*\d{3}[?>]\d\d")  # a three-digit transaction code, then the first subfield
_SEPA_KEY = re.compile(r"(EREF|KREF|MREF|CRED|DEBT|SVWZ|ABWA|ABWE|IBAN|BIC|COAM|OAMT|PURP)\+")
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


# The library's own fixes (a reversal mark read as the direction it has, `:86:` kept whole instead of cut
# after nine lines, a byte-order mark dropped, lowercase marks) are opt-in in 5.1; all are wanted here.
_OPTIONS = mt940.Options(
    reversal_sign=True, case_insensitive_marks=True, unbounded_details=True, strip_bom=True
)
# The `:86:` text is read here (below), so the library's `:86:` processor, which also rewrites the
# `:61:` customer reference, is switched off.
_PROCESSORS: dict[str, list[Any]] = {"post_transaction_details": []}
_OPENING = {"60F", "60M", "60"}
_CLOSING = {"62F", "62M", "62"}


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
                "not a complete MT940 statement: a statement starts with :20:, names its account in :25: "
                "and has its opening balance (:60F:), transactions (:61:) and closing balance (:62F:); this "
                f"file has only {', '.join(':' + t + ':' for t in present) or 'no MT940 tags'}; send the "
                "whole statement file as the bank delivered it"
            )
        keys = Keys()
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(self.text)
            first_line = self.text.count("\n", 0, start) + 1
            yield from self._statement(self.text[start:end], n + 1, first_line, keys)

    def _statement(self, chunk: str, number: int, first_line: int, keys: Keys) -> Iterator[Transaction]:
        _check_layout(chunk, number, first_line)
        parsed = mt940.models.Transactions(processors=_PROCESSORS, options=_OPTIONS)
        try:
            parsed.parse(chunk)
        except Exception as exc:
            raise InputError(
                f"statement {number} is not valid MT940 ({type(exc).__name__}: {str(exc)[:200]}): send the "
                "statement file as the bank delivered it"
            ) from None
        items = list(parsed)
        lines_61 = len(re.findall(r"^:61:", chunk, re.MULTILINE))
        if len(items) != lines_61:
            raise InputError(
                f"statement {number} has {lines_61} :61: lines but {len(items)} could be read: a :61: line "
                "is malformed; send the statement file as the bank delivered it"
            )
        data = parsed.data
        account = clean(data.get("account_identification"))
        opening = data.get("final_opening_balance") or data.get("intermediate_opening_balance")
        opening = opening or data.get("opening_balance")
        closing = data.get("final_closing_balance") or data.get("intermediate_closing_balance")
        closing = closing or data.get("closing_balance")
        statement = Statement(
            "MT940",
            id="/".join(
                x for x in (clean(data.get("transaction_reference")), data.get("statement_number")) if x
            ),
            account=account,
            currency=(opening.amount.currency or "") if opening is not None else "",
            opening=_exact(opening.amount.amount) if opening is not None else None,
            closing=_exact(closing.amount.amount) if closing is not None else None,
        )
        if closing is not None and opening is not None and closing.amount.currency != statement.currency:
            statement.balance_problem = (
                f"the closing balance is in {closing.amount.currency}, "
                f"the opening balance in {statement.currency}"
            )
        self.statements.append(statement)
        index = len(self.statements) - 1
        for position, item in enumerate(items, start=1):
            d: dict[str, Any] = item.data
            mark = (d.get("status") or "").upper()
            # C credit, D debit; RC reverses a credit (money leaves: a debit in effect), RD reverses a
            # debit (money comes back: a credit in effect). Direction is the effect; `reversal` says why.
            direction = "credit" if mark in ("C", "RD") else "debit"
            amount = abs(_exact(d["amount"].amount))
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


def _exact(value: Any) -> Decimal:
    """The library's amount as a Decimal; anything else (a float) would be a bug upstream."""
    if not isinstance(value, Decimal):
        raise TypeError(f"mt-940 gave an amount of type {type(value).__name__}, not Decimal")
    return value


def _check_layout(chunk: str, number: int, first_line: int) -> None:
    """The tags a statement must have, once each and in order, so that a damaged file (a tag lost, a
    statement cut off) is refused as a whole instead of read with transactions missing."""
    found = [(m.group(1), first_line + chunk.count("\n", 0, m.start())) for m in _TAG.finditer(chunk)]
    tags = [t for t, _ in found]
    where = {t: line for t, line in reversed(found)}
    accounts = [line for t, line in found if t == "25"]
    openings = [line for t, line in found if t in _OPENING]
    closings = [line for t, line in found if t in _CLOSING]
    first_61 = where.get("61")
    last_61 = max((line for t, line in found if t == "61"), default=None)
    fault = ""
    if len(accounts) != 1:
        fault = (
            f"names its account (:25:) {len(accounts)} times"
            + (f" (lines {', '.join(map(str, accounts))})" if accounts else "")
            + ", where a statement has exactly one"
        )
    elif len(openings) != 1:
        fault = f"has {len(openings)} opening balances (:60F:/:60M:), where a statement has exactly one"
    elif len(closings) != 1:
        fault = f"has {len(closings)} closing balances (:62F:/:62M:), where a statement has exactly one" + (
            "; it looks cut off" if not closings else ""
        )
    elif not accounts[0] < openings[0] < closings[0]:
        fault = "does not give :25:, :60F: and :62F: in that order"
    elif first_61 is not None and not (
        openings[0] < first_61 and last_61 is not None and last_61 < closings[0]
    ):
        fault = "has transactions (:61:) outside its opening and closing balances"
    if fault:
        raise InputError(
            f"statement {number} (its :20: on line {first_line}) {fault}: the file is damaged "
            "(a tag lost or a "
            f"statement cut off, tags found: {' '.join(':' + t + ':' for t in tags)}); ask the bank for the "
            "file again"
        )


def _date(value: Any) -> date | None:
    return date(value.year, value.month, value.day) if value is not None else None


def _details(raw: str) -> dict[str, str]:
    """The payer and the remittance text from a `:86:` field, whichever way the bank structured it."""
    text = raw.replace("\r", "").replace("\n", "")
    if _STRUCTURED.match(text):
        return _german(text.lstrip())
    if _DUTCH.search(text):
        return _dutch(text)
    return {"text": clean(raw)}


def _german(text: str) -> dict[str, str]:
    """`?20`..`?29` and `?60`..`?63` are the purpose, cut in pieces of 27 characters (words split across
    pieces, so they are joined without a space); `?32`/`?33` the name, cut the same way; `?31` the account."""
    fields: dict[str, list[str]] = {}
    separator = text[3]
    parts = re.split(rf"\{separator}(\d\d)", text)
    for code, value in zip(parts[1::2], parts[2::2], strict=False):
        fields.setdefault(code, []).append(value)
    purpose = "".join(
        v for c in [*map(str, range(20, 30)), *map(str, range(60, 64))] for v in fields.get(c, [])
    )
    out = {
        "name": clean("".join(fields.get("32", []) + fields.get("33", []))),
        "iban": clean("".join(fields.get("31", []))).replace(" ", ""),
    }
    pieces = _SEPA_KEY.split(purpose)
    if len(pieces) > 1:
        keyed = dict(zip(pieces[1::2], pieces[2::2], strict=False))
        out["eref"] = reference(keyed.get("EREF"))
        out["text"] = clean(keyed.get("SVWZ") or purpose)
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
