"""A bank credit's identity: the bank account it was booked on and what tells it apart from every other
credit there, so that every reading of it is recognised as the same credit: the same file again, an
intraday camt.054 then the camt.053 that covers it, the MT940 of the same day, the same file under
another journal, or the statement re-imported a year later.

Business Central's payment reconciliation journal identifies a bank transaction by its bank account and
statement line, and never applies one twice. The relay keeps a register of credits per company and bank
account (`register.BankRegister`); `compare` says whether a reading is a credit registered before:

- the bank's own reference for the transaction decides when both readings come from the same family of
  formats (camt, MT940 or BAI2: a bank's camt.054 and camt.053 share `AcctSvcrRef`, but its MT940 bank
  reference is another number): equal, the same credit; different, another one;
- otherwise the facts must agree: booking date, amount and currency always (the register is searched by
  them); value date, payer account, end-to-end id and creditor reference wherever both readings have
  them. Agreeing on one of those that tells credits apart (the payer's account, the end-to-end id, the
  creditor reference, or the whole remittance text or payer name) makes them the same credit; agreeing
  on nothing that tells them apart, or two registered credits that could both be it, is uncertain: the
  credit goes to review and is never posted on a guess.

What is kept of payer accounts, names and texts are digests: enough to compare, never the values.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..ledger.keys import exact_text
from .statement import Statement, Transaction

Verdict = Literal["same", "different", "maybe"]

# What may tell two credits apart: compared wherever both readings have them (a value both have and that
# differs makes them different credits).
DISTINCT = ("payer_account", "end_to_end", "creditor_reference")
# What agrees only as a whole (formats cut and join it differently): equal makes them the same credit,
# different says nothing.
LOOSE = ("text", "payer_name")
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "AE", "Ö": "OE", "Ü": "UE", "ß": "ss"})
_BANK_ACCOUNT = re.compile(r"(\d{8})/(\d{1,10})")  # a German MT940 :25: (bank code / account number)
NAME_LENGTH = 20  # MT940 cuts names into 27-character subfields: compare what every format keeps


def family(statement_format: str) -> str:
    """camt (.052, .053, .054: one bank's references are shared among them), mt940 or bai2."""
    lowered = statement_format.lower()
    return "camt" if lowered.startswith("camt") else lowered


def account_id(text: str) -> str:
    """The statement's account in one form whatever the format wrote: an IBAN in electronic form where
    one is given or can be made (a German MT940's `bank code/account number`), else the text as given."""
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    raw = re.sub(r"\s", "", text or "").upper()
    try:
        return str(IBAN(raw).compact)
    except SchwiftyException:
        pass
    found = _BANK_ACCOUNT.fullmatch(raw)
    if found:
        try:
            return str(IBAN.generate("DE", bank_code=found[1], account_code=found[2]).compact)
        except SchwiftyException:
            pass
    return raw


def _plain(text: str) -> str:
    """Letters and digits only, upper-case, ASCII: what every format keeps of a text."""
    text = unicodedata.normalize("NFKD", text.translate(_GERMAN))
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum()).upper()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24] if text else ""


@dataclass(frozen=True, slots=True)
class Identity:
    """What one reading says of a credit, as the register keeps and compares it."""

    account: str  # account_id() of the statement's account
    family: str
    key: str  # this reading's key (Transaction.key): equal for the same basis in the same account
    reference: str  # the bank's reference for the transaction, "" when it gave none
    entry: str  # the entry's reference and the transaction's place in it, "" when none
    booking_date: str  # ISO date
    value_date: str
    amount: str  # exact, as text, without trailing zeros
    currency: str
    details: dict[str, str] = field(default_factory=dict)  # digests, by the names in DISTINCT and LOOSE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        return cls(**{**data, "details": dict(data.get("details") or {})})


def identity_of(tx: Transaction, statement: Statement | None) -> Identity:
    """The identity of one credit as this statement reads it."""
    account = account_id(statement.account if statement is not None else "")
    day = tx.booking_date or tx.value_date
    kind = family(statement.format) if statement is not None else ""
    details = {
        "payer_account": _digest(account_id(tx.payer_account) if tx.payer_account else ""),
        "end_to_end": _digest(_plain(tx.end_to_end)),
        "creditor_reference": _digest(_plain(tx.creditor_reference)),
        "text": _digest(_plain(tx.text)),
        "payer_name": _digest(_plain(tx.payer_name)[:NAME_LENGTH]),
    }
    return Identity(
        account=account,
        family=kind,
        key=tx.key,
        reference=tx.bank_reference,
        entry=f"{tx.entry_reference}#{tx.position}" if tx.entry_reference else "",
        booking_date=day.isoformat() if day else "",
        value_date=tx.value_date.isoformat() if tx.value_date else "",
        amount=exact_text(tx.amount) if tx.amount is not None else "",  # 150.00 and 150 are one amount
        currency=tx.currency.upper(),
        details={k: v for k, v in details.items() if v},
    )


def compare(reading: Identity, registered: Identity) -> tuple[Verdict, str]:
    """Whether `reading` is the credit `registered` was read as, with the reason (for the report)."""
    core = (reading.booking_date, reading.amount, reading.currency)
    if core != (registered.booking_date, registered.amount, registered.currency):
        return "different", "another booking date, amount or currency"
    if reading.family == registered.family:
        if reading.reference and registered.reference:
            if reading.reference == registered.reference:
                return "same", "the bank's reference"
            return "different", "another bank reference"
        if reading.entry and registered.entry and reading.entry != registered.entry:
            return "different", "another entry of the statement"
    same_entry = reading.family == registered.family and reading.entry and reading.entry == registered.entry
    agree = ["entry reference"] if same_entry else []
    if reading.value_date and registered.value_date and reading.value_date != registered.value_date:
        return "different", "another value date"
    for name in DISTINCT:
        ours, theirs = reading.details.get(name), registered.details.get(name)
        if ours and theirs:
            if ours != theirs:
                return "different", f"another {name.replace('_', ' ')}"
            agree.append(name.replace("_", " "))
    for name in LOOSE:
        ours, theirs = reading.details.get(name), registered.details.get(name)
        if ours and ours == theirs:
            agree.append(name.replace("_", " "))
    if agree:
        return "same", "the same " + ", ".join(agree)
    return "maybe", "nothing that tells them apart"
