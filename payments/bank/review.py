"""The review file: one row per bank credit the relay would not apply on its own, with its candidates
and an empty `choice` column for the operator; dropped back into the inbox, the choices are posted.

What is posted never comes from the spreadsheet's cells: the credit's facts (amount, date,
references) are kept beside it in a JSON record in the reports container, named in every row
(`reviewFile`), and read back from there. The row gives only the operator's choice.

A choice is one of:
- invoice numbers (`SI-104711`, or several: `SI-104711 SI-104712`): apply the credit to them;
- `account <customer number>`: post it on account of that customer;
- `skip`: it is no payment to post (a refund, a transfer between own accounts...).
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from .. import codec
from ..errors import InputError
from ..readers import delimiter_of, spooled_csv
from .matching import Match
from .posting import Credit
from .receivables import Customer, Invoice, Receivables
from .references import reference_forms
from .statement import mask

COLUMNS = (
    "reviewFile",
    "key",
    "location",
    "bookingDate",
    "amount",
    "currency",
    "payer",
    "payerAccount",
    "text",
    "bankReference",
    "reason",
    "candidates",
    "choice",
)
MARKER = ("reviewfile", "key", "choice")  # the header cells that make a CSV a review file
MAX_REVIEW_BYTES = 64 * 1024 * 1024
SPOOL = 1024 * 1024
_SPLIT = re.compile(r"[\s,;]+")


def is_review(head: bytes) -> bool:
    """A CSV whose header names the review file's own columns."""
    first = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace").lower()
    cells = {c.strip().strip('"') for c in re.split(r"[,;]", first)}
    return all(m in cells for m in MARKER)


class ReviewWriter:
    """Collects review rows (spooled) and the credits' facts for the JSON record beside them."""

    def __init__(self, record_name: str, company_id: str, journal_id: str, source: str):
        self.record_name = record_name
        self.head = {"companyId": company_id, "journalId": journal_id, "source": source}
        self.rows: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL)
        self.credits: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL)
        self.count = 0

    def add(self, credit: Credit, payer_account: str, reason: str, match: Match | None) -> None:
        self.count += 1
        candidates = " | ".join(c.describe() for c in (match.candidates if match else [])[:8])
        row = {
            "reviewFile": self.record_name,
            "key": credit.key,
            "location": credit.location,
            "bookingDate": credit.booking_date,
            "amount": codec.format_decimal(credit.amount),
            "currency": credit.currency,
            "payer": credit.payer_name,
            "payerAccount": mask(payer_account) if payer_account else "",
            "text": credit.text[:1000],
            "bankReference": credit.bank_reference or credit.end_to_end,
            "reason": reason,
            "candidates": candidates,
            "choice": "",
        }
        self.rows.write(codec.dumpb(row) + b"\n")
        self.credits.write((b"," if self.count > 1 else b"") + codec.dumpb(credit.key) + b":")
        self.credits.write(codec.dumpb(credit.to_json()))

    def csv(self) -> IO[bytes]:
        self.rows.seek(0)
        rows = ([str(row[c]) for c in COLUMNS] for row in map(codec.loads, self.rows))
        return spooled_csv(list(COLUMNS), rows, bom=True)

    def record(self) -> IO[bytes]:
        out = tempfile.SpooledTemporaryFile(max_size=SPOOL)
        out.write(codec.dumpb(self.head)[:-1] + b',"credits":{')
        self.credits.seek(0)
        while chunk := self.credits.read(1 << 20):
            out.write(chunk)
        out.write(b"}}")
        out.seek(0)
        return out


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a review file dropped back: where it is, which credit, what the operator chose."""

    location: str
    record: str
    key: str
    choice: str


def read_rows(data: bytes) -> Iterator[Row]:
    """The rows of a review file dropped back; the header must name reviewFile, key and choice."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"the review file is not UTF-8 text (byte {exc.start}): save it as CSV UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter_of(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if not all(m in header for m in MARKER):
        raise InputError(
            "a review file needs its reviewFile, key and choice columns: drop back the file as written"
        )
    at = {name: header.index(name) for name in MARKER}
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        cells = cells + [""] * (len(header) - len(cells))
        yield Row(
            f"line {number}",
            _unguard(cells[at["reviewfile"]].strip()),
            _unguard(cells[at["key"]].strip()),
            _unguard(cells[at["choice"]].strip()),
        )


def _unguard(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def load_record(data: bytes) -> dict[str, Any]:
    """The JSON record written beside a review file: its company, journal and credits by key."""
    try:
        record = codec.loads(data, unique_keys=False)
    except Exception:  # a record we did not write, or one damaged since
        raise InputError("the review file's record is not the JSON the relay wrote") from None
    if not isinstance(record, dict) or not isinstance(record.get("credits"), dict):
        raise InputError("the review file's record is not the JSON the relay wrote")
    return record


@dataclass(frozen=True, slots=True)
class Choice:
    """What the operator decided for one credit."""

    action: str  # "apply", "account", "skip", "none"
    customer: Customer | None = None
    invoices: tuple[Invoice, ...] = ()


def parse_choice(text: str, book: Receivables) -> Choice:
    """Read an operator's choice against the books; InputError says what is wrong and what to write."""
    words = [w for w in _SPLIT.split(text.strip()) if w]
    if not words:
        return Choice("none")
    head = words[0].lower()
    if head in ("skip", "ignore") and len(words) == 1:
        return Choice("skip")
    if head in ("account", "on-account"):
        if len(words) != 2:
            raise InputError("write 'account' and one customer number, e.g. 'account 10000'")
        customer = book.customers.get(words[1].upper())
        if customer is None:
            raise InputError(f"no customer {words[1]!r} in the company")
        return Choice("account", customer)
    invoices = []
    for word in words:
        invoice = _invoice(word, book)
        if invoice in invoices:
            raise InputError(f"{invoice.number} is named twice")
        invoices.append(invoice)
    customers = {i.customer_number for i in invoices}
    if len(customers) > 1:
        raise InputError(
            f"the invoices belong to different customers ({', '.join(sorted(customers))}): "
            "one payment line pays one customer's invoices"
        )
    customer = book.customers.get(invoices[0].customer_number)
    if customer is None:
        raise InputError(
            f"{invoices[0].number}'s customer {invoices[0].customer_number} is not in the company"
        )
    return Choice("apply", customer, tuple(invoices))


def _invoice(word: str, book: Receivables) -> Invoice:
    invoice = book.invoices.get(word.upper())
    if invoice is None:
        forms = reference_forms(word)
        found = {i.number: i for i in book.invoices.values() if forms & reference_forms(i.number)}
        if len(found) > 1:
            raise InputError(f"{word!r} could be {', '.join(sorted(found))}: write the whole number")
        invoice = next(iter(found.values()), None)
    if invoice is None or not book.open(invoice):
        raise InputError(
            f"no open invoice {word!r} (unknown, paid, cancelled, or paid by lines already in the journal): "
            "write an open invoice's number, "
            "'account <customer number>' or 'skip'"
        )
    return invoice
