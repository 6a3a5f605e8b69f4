"""What cash application knows about the books: the company's customers, its open sales invoices, its
local currency (read from the target), and the payer IBAN map the operator keeps in storage.

Read once per statement file, so every credit of the file is matched against the same picture of
the books. The standard API has no customer bank accounts (REFERENCE 9): which IBAN pays for which
customer is the operator's map, `payers.csv` in the config container.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from ..errors import InputError, TargetError
from ..readers import delimiter_of
from .statement import mask

log = logging.getLogger("payments.bank")

PAYERS_BLOB = "payers.csv"
MAX_PAYERS_BYTES = 8 * 1024 * 1024
# Business Central's "Blocked" option on a customer: "All" refuses every posting, payments included
# (Cust.-Check Line); "Ship" and "Invoice" leave payments alone.
BLOCKS_PAYMENTS = {"All"}


class Reads(Protocol):
    """The target's read side (`TargetClient.read_all`)."""

    def read_all(self, company_id: str, entity: str, query: dict[str, str] | None = None) -> Any: ...

    def journal_lines(self, company_id: str, journal_id: str, select: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    number: str
    name: str
    blocked: str = ""


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    number: str
    customer_number: str
    remaining: Decimal
    currency: str  # "" or the company's local currency code
    status: str
    external_document_number: str = ""

    @property
    def open(self) -> bool:
        return self.status == "Open" and self.remaining > 0


@dataclass(slots=True)
class Receivables:
    """The books as cash application sees them, with the indexes matching needs.

    `left` is what each open invoice still waits for: its remaining amount less the payment lines
    already in the journal that apply to it (Business Central lowers `remainingAmount` only when the
    journal is posted), less what this file has applied so far. Two credits are never applied to the
    same euro of an invoice, so every line the relay writes can be posted."""

    customers: dict[str, Customer]  # by number, upper-case
    invoices: dict[str, Invoice]  # by number, upper-case
    currency: str  # the company's local currency (companyInformation.currencyCode)
    payers: dict[str, str] = field(default_factory=dict)  # IBAN (electronic form) -> customer number
    notes: list[str] = field(default_factory=list)  # what was wrong with the payer map, for the report
    in_journal: dict[str, Decimal] = field(default_factory=dict)  # invoice -> applied by unposted lines
    left: dict[str, Decimal] = field(default_factory=dict, init=False)
    by_customer: dict[str, list[Invoice]] = field(default_factory=dict, init=False)
    by_amount: dict[Decimal, list[Invoice]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        by_customer: dict[str, list[Invoice]] = defaultdict(list)
        by_amount: dict[Decimal, list[Invoice]] = defaultdict(list)
        for invoice in self.invoices.values():
            left = invoice.remaining - self.in_journal.get(invoice.number, Decimal(0))
            self.left[invoice.number] = left
            if invoice.open and left > 0:
                by_customer[invoice.customer_number].append(invoice)
                by_amount[left].append(invoice)
        self.by_customer = dict(by_customer)
        self.by_amount = dict(by_amount)

    def open(self, invoice: Invoice) -> bool:
        """Open at the target and not yet paid in full by a line in the journal or in this file."""
        return invoice.open and self.left.get(invoice.number, Decimal(0)) > 0

    def apply(self, invoice: Invoice, amount: Decimal) -> None:
        """This file applies `amount` to the invoice: later credits see only what is left."""
        self.left[invoice.number] = self.left.get(invoice.number, Decimal(0)) - amount

    def in_local_currency(self, invoice: Invoice) -> bool:
        return invoice.currency in ("", self.currency)


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            pass
    raise InputError(f"the target answered {what} as {type(value).__name__}, not a decimal number")


def _journals(target: Reads, company_id: str, journal_id: str) -> tuple[list[str], str]:
    """Every customer payment journal of the company (page 30013 lists the batches of the default
    customer payments template), this one first: their unposted lines all wait to pay invoices. Lines in
    journals of other templates are not readable through the API (page 30049 `journalLines` shows
    G/L and bank account lines only). When the list cannot be read, this journal alone, and a note."""
    try:
        found = [
            str(item.get("id") or "").lower()
            for item in target.read_all(company_id, "customerPaymentJournals", {"$select": "id,code"})
        ]
    except TargetError as exc:
        return [journal_id], (
            f"the company's other customer payment journals could not be listed ({exc.message}): only this "
            "journal's unposted lines are counted against the invoices"
        )
    own = journal_id.lower()
    return [journal_id] + [j for j in found if j and j != own], ""


def load(
    target: Reads, company_id: str, journal_id: str, payers: bytes | None, *, graph: bool = False
) -> Receivables:
    """Read customers, open sales invoices, the unposted lines of every customer payment journal and the
    local currency from the target, and the payer map. Graph's salesInvoice has no remainingAmount, so it
    is not asked for there (an unknown property in `$select` is refused)."""
    info = next(iter(target.read_all(company_id, "companyInformation")), None) or {}
    currency = str(info.get("currencyCode") or "").upper()
    customers = {}
    for item in target.read_all(company_id, "customers", {"$select": "id,number,displayName,blocked"}):
        number = str(item.get("number") or "").upper()
        if number:
            blocked = str(item.get("blocked") or "").strip()
            customers[number] = Customer(
                str(item.get("id") or ""),
                number,
                str(item.get("displayName") or ""),
                "" if blocked in ("_x0020_", " ") else blocked,
            )
    invoices = {}
    unknown_remaining = 0
    for item in target.read_all(
        company_id,
        "salesInvoices",
        {
            "$filter": "status eq 'Open'",
            "$select": "id,number,externalDocumentNumber,customerNumber,currencyCode,status"
            + ("" if graph else ",remainingAmount"),
        },
    ):
        number = str(item.get("number") or "").upper()
        if not number or item.get("status") != "Open":
            continue
        if "remainingAmount" not in item:  # Graph's financials salesInvoice has none: nothing fits surely
            unknown_remaining += 1
            continue
        invoices[number] = Invoice(
            str(item.get("id") or ""),
            number,
            str(item.get("customerNumber") or "").upper(),
            _decimal(item.get("remainingAmount", 0), f"invoice {number}'s remainingAmount"),
            str(item.get("currencyCode") or "").upper(),
            str(item.get("status")),
            str(item.get("externalDocumentNumber") or "").upper(),
        )
    in_journal: dict[str, Decimal] = defaultdict(Decimal)
    journals, note = _journals(target, company_id, journal_id)
    for journal in journals:
        for line in target.journal_lines(company_id, journal, "appliesToInvoiceNumber,amount"):
            number = str(line.get("appliesToInvoiceNumber") or "").upper()
            if number:
                in_journal[number] += -_decimal(line.get("amount", 0), "a journal line's amount")
    book = Receivables(customers, invoices, currency, in_journal=dict(in_journal))
    if note:
        book.notes.append(note)
    if payers is not None:
        book.payers, book.notes = read_payers(payers, customers)
    if unknown_remaining:
        book.notes.append(
            f"{unknown_remaining} open invoices came without remainingAmount (Microsoft Graph's financials "
            "API has none): they are not matched; cash application needs Business Central API v2.0"
        )
    if not currency:
        book.notes.append("the company's currency could not be read: every credit goes to review")
    return book


def normal_iban(text: str) -> str | None:
    """An IBAN in its electronic form when it is one (country, check digits, national format)."""
    try:
        return str(IBAN(text))
    except (SchwiftyException, ValueError):
        return None


def read_payers(
    data: bytes, customers: Iterable[str] | dict[str, Customer]
) -> tuple[dict[str, str], list[str]]:
    """The operator's payer map: a CSV with columns `iban` and `customerNumber` (`,` or `;`). Rows that
    cannot be used are left out and said in notes, the IBAN masked; one IBAN for two customers is left
    out too (it could not tell them apart)."""
    known = set(customers)
    if len(data) > MAX_PAYERS_BYTES:
        return {}, [f"{PAYERS_BLOB} is over {MAX_PAYERS_BYTES // (1024 * 1024)} MiB: it was not read"]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return {}, [f"{PAYERS_BLOB} is not UTF-8 text: it was not read"]
    rows = csv.reader(io.StringIO(text), delimiter=delimiter_of(text))
    header = [h.strip().lower() for h in next(rows, [])]
    if "iban" not in header or "customernumber" not in header:
        return {}, [f"{PAYERS_BLOB} needs a header row with the columns iban and customerNumber"]
    at_iban, at_customer = header.index("iban"), header.index("customernumber")
    payers: dict[str, str] = {}
    doubtful: set[str] = set()
    notes: list[str] = []
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = row + [""] * (len(header) - len(row))
        raw, customer = cells[at_iban].strip(), cells[at_customer].strip().upper()
        iban = normal_iban(raw)
        if iban is None:
            notes.append(
                f"{PAYERS_BLOB} line {number}: {mask(raw)!r} is not a valid IBAN; the row is ignored"
            )
            continue
        if known and customer not in known:
            notes.append(f"{PAYERS_BLOB} line {number}: no customer {customer!r} in the company; ignored")
            continue
        if payers.get(iban, customer) != customer:
            doubtful.add(iban)
        payers[iban] = customer
    for iban in doubtful:
        notes.append(f"{PAYERS_BLOB}: {mask(iban)} is listed for more than one customer; it is not used")
        del payers[iban]
    return payers, notes
