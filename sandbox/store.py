"""What the sandbox keeps in memory: companies, their journals and customers, the seed, recorded requests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from .odata import norm_guid

SANDBOX_COMPANY_ID = "5b1c4a0e-7d3f-4e8a-9c21-3f6d8e0a1b01"
SANDBOX_COMPANY_NAME = "CRONUS Sandbox"
SANDBOX_JOURNAL_ID = "9e2f7c14-1a5b-4d6e-8f30-7c4b2a9d0e02"
SANDBOX_JOURNAL_NAME = "GENERAL"
SANDBOX_CUSTOMERS: dict[str, str] = {
    "10000": "c0000001-0000-4000-8000-000000010000",
    "20000": "c0000002-0000-4000-8000-000000020000",
    "30000": "c0000003-0000-4000-8000-000000030000",
    "40000": "c0000004-0000-4000-8000-000000040000",
}
SANDBOX_CUSTOMER_NAMES: dict[str, str] = {
    "10000": "Adatum Corporation",
    "20000": "Trey Research",
    "30000": "School of Fine Art",
    "40000": "Alpine Ski House",
}
SANDBOX_CUSTOMER_EMAILS: dict[str, str] = {
    "10000": "robert.townes@adatum.example",
    "20000": "helen.ray@treyresearch.example",
    "30000": "meagan.bond@fineart.example",
    "40000": "ian.deberry@alpineskihouse.example",
}
# Posted sales invoices: number -> (id, bill-to customer number, status, amount including VAT).
SANDBOX_INVOICES: dict[str, tuple[str, str, str, Decimal]] = {
    "103001": ("a1000001-0000-4000-8000-000000103001", "10000", "Open", Decimal("1500.00")),
    "103002": ("a1000002-0000-4000-8000-000000103002", "20000", "Paid", Decimal("250.00")),
}
# The seed companies' local currency (General Ledger Setup "LCY Code"; companyInformation.currencyCode).
SANDBOX_CURRENCY = "EUR"
# Table 18 Customer, field Blocked: the enum's blank value, as API v2.0 writes it in JSON.
NOT_BLOCKED = "_x0020_"
CUSTOMER_BLOCKED = (NOT_BLOCKED, "Ship", "Invoice", "All")
# "Sales Invoice Entity Aggregate".Status (NAV.invoiceEntityAggregateStatus), and those of posted ones.
INVOICE_STATUSES = ("Draft", "In Review", "Open", "Paid", "Canceled", "Corrective")
POSTED_STATUSES = ("Open", "Paid", "Canceled", "Corrective")
DOCUMENT_SERIES_START = (
    "G00001"  # the sandbox journal's number series (an empty journal's first Document No.)
)


@dataclass
class RecordedRequest:
    """One request as received, so tests can assert on exactly what a client sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Journal:
    name: str
    payments: list[dict[str, Any]] = field(default_factory=list)
    lines: dict[int, dict[str, Any]] = field(default_factory=dict)  # by Line No.: O(1) checks for big files
    last: dict[str, Any] | None = None  # the line with the highest Line No. (what FindLast finds)

    def add(self, stored: dict[str, Any]) -> None:
        self.payments.append(stored)
        self.lines[stored["lineNumber"]] = stored
        if self.last is None or stored["lineNumber"] > self.last["lineNumber"]:
            self.last = stored

    def above(self, line: int) -> dict[str, Any] | None:
        """The line a new line at `line` takes its defaults from: the one just above it, else the last."""
        if line and self.last is not None and line < self.last["lineNumber"]:
            before = [n for n in self.lines if n < line]
            return self.lines[max(before)] if before else None
        return self.last

    def clear(self) -> None:
        self.payments.clear()
        self.lines.clear()
        self.last = None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Customer:
    """Table 18 Customer as API v2.0 page 30009 shows it. `unapplied` is what posted payments left open
    on their own ledger entries (negative): "Balance Due" sums every detailed ledger entry, so it counts."""

    number: str
    id: str
    name: str = ""
    email: str = ""
    blocked: str = NOT_BLOCKED
    currency_code: str = ""  # blank: the company's local currency
    modified: str = field(default_factory=now_iso)
    balance_due: Decimal = Decimal(0)  # kept up to date by add_invoice and posting
    unapplied: Decimal = Decimal(0)


@dataclass
class Invoice:
    """A sales invoice as API v2.0 page 30012 ("Sales Invoice Entity Aggregate") shows it. `seed_*` are
    its values as seeded, which `reset()` brings back (posting applies payments to it)."""

    number: str
    id: str
    customer: str  # the (sell-to = bill-to) customer's number
    status: str
    amount: Decimal  # totalAmountIncludingTax
    remaining: Decimal
    external_document_number: str = ""
    invoice_date: str = ""
    posting_date: str = ""
    due_date: str = ""
    currency_code: str = ""  # blank: the company's local currency (the API shows the LCY code)
    modified: str = field(default_factory=now_iso)
    seed_status: str = ""
    seed_remaining: Decimal = Decimal(0)

    @property
    def posted(self) -> bool:
        return self.status in POSTED_STATUSES


@dataclass
class Company:
    name: str
    journals: dict[str, Journal] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)  # upper-case number -> lower-case id
    customer_names: dict[str, str] = field(default_factory=dict)  # upper-case number -> name
    customer_records: dict[str, Customer] = field(default_factory=dict)  # upper-case number -> record
    customer_numbers: dict[str, str] = field(default_factory=dict)  # id -> number
    invoices: dict[str, Invoice] = field(default_factory=dict)  # upper-case number -> invoice
    invoice_numbers: dict[str, str] = field(default_factory=dict)  # id -> number
    currency_code: str = SANDBOX_CURRENCY  # General Ledger Setup "LCY Code"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))  # companyInformation's own SystemId
    work_date: date | None = None  # Business Central's WorkDate; None: today
    ledger_entries: list[dict[str, Any]] = field(default_factory=list)  # posted G/L entries

    def put_customer(self, customer: Customer) -> None:
        old = self.customer_records.get(customer.number)
        if old is not None:
            self.customer_numbers.pop(old.id, None)
            customer.balance_due = old.balance_due
        self.customer_records[customer.number] = customer
        self.customers[customer.number] = customer.id
        self.customer_names[customer.number] = customer.name
        self.customer_numbers[customer.id] = customer.number

    def put_invoice(self, invoice: Invoice) -> None:
        old = self.invoices.get(invoice.number)
        if old is not None:
            self.invoice_numbers.pop(old.id, None)
            if old.posted and old.customer in self.customer_records:
                self.customer_records[old.customer].balance_due -= old.remaining
        self.invoices[invoice.number] = invoice
        self.invoice_numbers[invoice.id] = invoice.number
        if invoice.posted:
            self.customer_records[invoice.customer].balance_due += invoice.remaining

    def invoice_by_id(self, invoice_id: str) -> Invoice | None:
        number = self.invoice_numbers.get(invoice_id)
        return self.invoices.get(number) if number is not None else None

    def restore(self) -> None:
        """Back to the seed: invoices as seeded, no unapplied payments, balances summed again."""
        for customer in self.customer_records.values():
            customer.unapplied = customer.balance_due = Decimal(0)
        for invoice in self.invoices.values():
            invoice.status, invoice.remaining = invoice.seed_status, invoice.seed_remaining
            if invoice.posted:
                self.customer_records[invoice.customer].balance_due += invoice.remaining


def seeded_company(name: str) -> Company:
    """A company with the SANDBOX_CUSTOMERS and SANDBOX_INVOICES (ids fixed), no journals."""
    company = Company(name)
    for number, cust_id in SANDBOX_CUSTOMERS.items():
        company.put_customer(
            Customer(number, cust_id, SANDBOX_CUSTOMER_NAMES[number], SANDBOX_CUSTOMER_EMAILS[number])
        )
    for number, (inv_id, customer, status, amount) in SANDBOX_INVOICES.items():
        remaining = amount if status == "Open" else Decimal("0.00")
        company.put_invoice(
            Invoice(
                number,
                inv_id,
                customer,
                status,
                amount,
                remaining,
                invoice_date="2024-01-15",
                posting_date="2024-01-15",
                due_date="2024-02-14",
                seed_status=status,
                seed_remaining=remaining,
            )
        )
    return company


def extra_journals(total: int) -> list[tuple[int, str]]:
    """Journals 2..total beyond the seeded one, as (number, id): ids fixed, so a client started apart
    from the sandbox (a benchmark) knows them."""
    return [
        (n, str(uuid.uuid5(uuid.NAMESPACE_URL, f"payments-sandbox/journal/{n}"))) for n in range(2, total + 1)
    ]


def seed_companies() -> dict[str, Company]:
    """The seed every sandbox starts with: one company, its journal, the SANDBOX_CUSTOMERS and
    SANDBOX_INVOICES."""
    company = seeded_company(SANDBOX_COMPANY_NAME)
    company.id = str(uuid.uuid5(uuid.NAMESPACE_URL, "payments-sandbox/companyInformation/1"))
    company.journals[SANDBOX_JOURNAL_ID] = Journal(SANDBOX_JOURNAL_NAME)
    return {SANDBOX_COMPANY_ID: company}


def guid_arg(value: str | None) -> str:
    """The canonical form of a GUID given to a seed helper (ValueError if it is none), or a new one."""
    if value is None:
        return str(uuid.uuid4())
    norm = norm_guid(value)
    if norm is None:
        raise ValueError(f"{value!r} is not a GUID")
    return norm
