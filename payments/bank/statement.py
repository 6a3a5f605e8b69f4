"""What a bank statement says, whatever its format: its statements, and their transactions.

One word per meaning: an *entry* is a booking on our account (camt `Ntry`, MT940 `:61:`, BAI2 `16`);
a *transaction* is one payment inside it (camt `TxDtls`; a batch booking has many). A *credit* is a
transaction that brings money in and is booked and not reversed: only credits become payments.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

Direction = Literal["credit", "debit"]
Status = Literal["booked", "pending", "info"]

# Why a transaction is not a payment (the report's skip reasons).
SKIP_DEBIT = "debit"
SKIP_REVERSAL = "reversal"
SKIP_PENDING = "pending"
SKIP_INFO = "information"
SKIP_ZERO = "zero amount"

_SPACES = re.compile(r"\s+")


def clean(text: str | None) -> str:
    """Text as a person reads it: no control characters, runs of white space as one space."""
    if not text:
        return ""
    return _SPACES.sub(" ", "".join(c if c.isprintable() else " " for c in text)).strip()


def mask(account: str) -> str:
    """An account number as reports show it: enough to recognise, not enough to use."""
    account = account.replace(" ", "")
    return account if len(account) <= 8 else f"{account[:4]}…{account[-4:]}"


@dataclass(slots=True)
class Transaction:
    """One transaction as the bank reported it. `amount` is positive; `direction` says which way."""

    location: str  # for people: "statement 1, entry 3, transaction 2" or "line 12"
    statement: int  # index into the reader's statements
    direction: Direction
    amount: Decimal | None  # None: the bank gave no amount for it (a batch without details)
    currency: str
    status: Status = "booked"
    reversal: bool = False
    booking_date: date | None = None
    value_date: date | None = None
    bank_reference: str = ""  # the bank's reference for this transaction (camt AcctSvcrRef)
    entry_reference: str = ""  # the bank's reference for the entry that holds it
    position: int = 1  # the transaction's place in its entry
    end_to_end: str = ""  # the payer's reference (camt EndToEndId); "NOTPROVIDED" counts as none
    payer_name: str = ""
    payer_account: str = ""  # the payer's IBAN (or account number)
    text: str = ""  # unstructured remittance information, joined
    creditor_reference: str = ""  # structured reference (ISO 11649 RF..., Swiss QRR, ...)
    documents: tuple[str, ...] = ()  # referred document numbers (camt Strd/RfrdDocInf/Nb)
    bank_code: str = ""  # bank transaction code (camt Domn/Fmly/SubFmly, MT940 type, BAI2 type code)
    problem: str = ""  # why this transaction cannot be trusted as read (goes to review, never posted)
    key: str = ""  # unique per transaction, the same whenever it is read again (see `Keys`)

    @property
    def skip_reason(self) -> str | None:
        """Why this transaction is not a payment, or None when it is a credit to apply."""
        if self.reversal:  # first: a reversed credit is a debit too, but "reversal" says more
            return SKIP_REVERSAL
        if self.direction == "debit":
            return SKIP_DEBIT
        if self.status == "pending":
            return SKIP_PENDING
        if self.status == "info":
            return SKIP_INFO
        if self.amount is not None and self.amount == 0:
            return SKIP_ZERO
        return None


@dataclass(slots=True)
class Statement:
    """One statement (camt Stmt/Ntfctn/Rpt, an MT940 statement, a BAI2 account) and its own totals."""

    format: str  # "camt.053.001.08", "MT940", "BAI2"
    id: str = ""
    account: str = ""
    currency: str = ""
    opening: Decimal | None = None  # opening booked balance (signed)
    closing: Decimal | None = None  # closing booked balance (signed)
    declared_credits: tuple[int | None, Decimal] | None = None  # the file's own count and sum of credits
    declared_debits: tuple[int | None, Decimal] | None = None
    entries: int = 0
    booked_credit_sum: Decimal = Decimal(0)  # booked, in the statement's currency, reversals included
    booked_debit_sum: Decimal = Decimal(0)
    credit_entries: int = 0
    debit_entries: int = 0
    checks: dict[str, str] = field(default_factory=dict)  # what was tied to the file's own totals
    balance_problem: str = ""  # why the balances cannot be compared (set by the reader), e.g. currencies

    def book(self, direction: Direction, amount: Decimal | None, status: Status) -> None:
        """Count one entry towards the statement's own totals."""
        self.entries += 1
        if amount is None:
            return
        if direction == "credit":
            self.credit_entries += 1
            if status == "booked":
                self.booked_credit_sum += amount
        else:
            self.debit_entries += 1
            if status == "booked":
                self.booked_debit_sum += amount

    def tie_out(self) -> None:
        """Compare what was read with the file's own totals, so an operator can trust the reading."""
        if self.declared_credits is not None:
            count, total = self.declared_credits
            ours = self.booked_credit_sum
            self.checks["credits"] = (
                f"{'matches' if ours == total else 'DIFFERS FROM'} the file's total of credits "
                f"({_money(total)}{f' in {count} entries' if count is not None else ''}); read {_money(ours)}"
            )
        if self.declared_debits is not None:
            count, total = self.declared_debits
            ours = self.booked_debit_sum
            self.checks["debits"] = (
                f"{'matches' if ours == total else 'DIFFERS FROM'} the file's total of debits "
                f"({_money(total)}); read {_money(ours)}"
            )
        if self.balance_problem:
            self.checks["balance"] = f"not comparable: {self.balance_problem}"
        elif self.opening is not None and self.closing is not None:
            expected = self.opening + self.booked_credit_sum - self.booked_debit_sum
            self.checks["balance"] = (
                f"opening {_money(self.opening)} + credits - debits = {_money(expected)}: "
                f"{'matches' if expected == self.closing else 'DIFFERS FROM'} the closing balance "
                f"{_money(self.closing)}"
            )


def _money(value: Decimal) -> str:
    return format(value, "f")


_NOT_PROVIDED = {"", "NOTPROVIDED", "NONREF", "NONE"}


def reference(value: str | None) -> str:
    """A reference as given, or "" for the placeholders banks write when there is none."""
    value = clean(value)
    return "" if value.upper() in _NOT_PROVIDED else value


class Keys:
    """Gives each transaction of one file its key: our account and the bank's transaction reference;
    failing that, the entry's reference and the transaction's position in it; failing that, a digest
    of what the transaction says. Read again (the same file, or a camt.053 covering a camt.054), a
    transaction gets the same key, so the ledger posts it once.

    A basis seen again in the same file (identical transactions, or a bank that copies one reference
    into several transactions) gets its occurrence number, counted per basis: transactions with other
    bases, in whatever order, never shift it. The basis is encoded as a JSON list, so that a reference
    holding the separator cannot make two different bases equal."""

    def __init__(self) -> None:
        # Seen bases by a 16-byte digest: a 50,000-transaction file costs a few MB, not its whole text.
        self._seen: Counter[bytes] = Counter()

    @staticmethod
    def basis(tx: Transaction, account: str) -> list[str]:
        """What the key is made of (without the occurrence number)."""
        account = account.replace(" ", "").upper()
        if tx.bank_reference:
            return ["ref", account, tx.bank_reference]
        if tx.entry_reference:
            return ["entry", account, tx.entry_reference, str(tx.position)]
        day = tx.booking_date or tx.value_date
        return [
            "digest",
            account,
            day.isoformat() if day else "",
            format(tx.amount, "f") if tx.amount is not None else "",
            tx.currency,
            tx.direction,
            tx.end_to_end,
            tx.creditor_reference,
            tx.text,
        ]

    def assign(self, tx: Transaction, account: str) -> None:
        basis = json.dumps(self.basis(tx, account), ensure_ascii=False)
        seen = hashlib.sha256(basis.encode("utf-8")).digest()[:16]
        self._seen[seen] += 1
        occurrence = self._seen[seen]
        if occurrence > 1:
            basis = json.dumps([basis, occurrence])
        tx.key = "bank-" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:40]
