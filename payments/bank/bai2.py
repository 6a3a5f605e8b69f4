"""BAI2 cash management balance reports, read with PyPI `bai2` (records 01-99, continuations, and the
control totals of every account, group and file checked by the library).

BAI2 amounts are whole numbers of the currency's minor unit: 12345 is 123.45 USD but 12345 JPY.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from bai2 import bai2 as bai2lib
from bai2 import exceptions as bai2errors

from ..errors import InputError
from .statement import Keys, Statement, Transaction, clean, reference

# ISO 4217 currencies whose minor unit is not 1/100 (others: two decimals).
_EXPONENT = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
    "UYW": 4,
}
_OPENING_LEDGER, _CLOSING_LEDGER = "010", "015"
_TOTAL_CREDITS, _TOTAL_DEBITS = (
    "100",
    "400",
)  # summary codes: amount and item count of the day's credits/debits


def looks_like(head: bytes) -> bool:
    """BAI2 by content: the file header record `01,` first."""
    return head.lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"01,")


def minor(amount: int | None, currency: str) -> Decimal | None:
    """A BAI2 amount in the currency's unit, exactly."""
    if amount is None:
        return None
    return Decimal(int(amount)).scaleb(-_EXPONENT.get(currency, 2))


class Bai2Reader:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name
        self.statements: list[Statement] = []
        self.format = "BAI2"

    def transactions(self) -> Iterator[Transaction]:
        try:
            text = self.data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = self.data.decode("cp1252", "replace")
        try:
            document = bai2lib.parse_from_string(text, check_integrity=True)
        except bai2errors.IntegrityException as exc:
            raise InputError(
                f"the BAI2 file does not add up ({exc}): it may be cut off or damaged; "
                "ask the bank for it again"
            ) from None
        except (bai2errors.ParsingException, bai2errors.NotSupportedYetException) as exc:
            raise InputError(
                f"not a valid BAI2 file ({exc}): send the BAI2 file as the bank delivered it"
            ) from None
        except Exception as exc:
            raise InputError(
                f"not a valid BAI2 file ({type(exc).__name__}: {str(exc)[:200]}): send the BAI2 file as the "
                "bank delivered it"
            ) from None
        keys = Keys()
        for g, group in enumerate(document.children, start=1):
            group_currency = clean(group.header.currency) or "USD"  # BAI2: absent means USD
            for a, account in enumerate(group.children, start=1):
                yield from self._account(group, account, g, a, group_currency, keys)

    def _account(
        self, group: Any, account: Any, g: int, a: int, default: str, keys: Keys
    ) -> Iterator[Transaction]:
        header = account.header
        currency = clean(header.currency) or default
        summary = {s.type_code.code: s for s in header.summary_items if s.type_code is not None}
        statement = Statement(
            "BAI2",
            id=f"group {g} account {a}",
            account=clean(header.customer_account_number),
            currency=currency,
            opening=minor(summary[_OPENING_LEDGER].amount, currency) if _OPENING_LEDGER in summary else None,
            closing=minor(summary[_CLOSING_LEDGER].amount, currency) if _CLOSING_LEDGER in summary else None,
            declared_credits=_declared(summary.get(_TOTAL_CREDITS), currency),
            declared_debits=_declared(summary.get(_TOTAL_DEBITS), currency),
        )
        self.statements.append(statement)
        index = len(self.statements) - 1
        as_of = group.header.as_of_date
        for position, detail in enumerate(account.children, start=1):
            kind = detail.type_code.transaction.name if detail.type_code is not None else ""
            if kind not in ("credit", "debit"):
                continue  # status and summary codes carry no money movement
            amount = minor(detail.amount, currency)
            statement.book(kind, amount, "booked")  # type: ignore[arg-type]
            availability = detail.availability or {}
            value_date = (
                availability.get("date")
                if detail.funds_type is not None and detail.funds_type.name == "value_dated"
                else None
            )
            tx = Transaction(
                f"group {g}, account {a}, transaction {position}",
                index,
                kind,  # type: ignore[arg-type]
                amount,
                currency,
                booking_date=as_of,
                value_date=value_date or as_of,
                bank_reference=reference(detail.bank_reference),
                position=position,
                end_to_end=reference(detail.customer_reference),
                text=clean(detail.text),
                bank_code=detail.type_code.code,
                problem="" if amount is not None else "the transaction record gives no amount",
            )
            keys.assign(tx, statement.account)
            yield tx
        total = account.trailer.account_control_total
        rows = getattr(account.trailer, "rows", None) or []
        if rows and not str(rows[0][1]).split(",")[0].strip():
            total = None  # a blank field, which the library reads as 0
        statement.checks["control total"] = (
            f"matches the account's control total (49 record, {total} in minor units; "
            "checked by the bai2 library)"
            if total is not None
            else "the account trailer (49) gives no control total"
        )
        statement.tie_out()


def _declared(item: Any, currency: str) -> tuple[int | None, Decimal] | None:
    """A summary total (100 credits, 400 debits) as the file's own count and sum."""
    if item is None or item.amount is None:
        return None
    return item.item_count, minor(item.amount, currency) or Decimal(0)
