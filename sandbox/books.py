"""The sandbox's books: seeding companies, journals, customers and invoices, and reading what they hold
(journal lines, posted entries), for tests and operators. A part of `Sandbox`, split out by concern."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from . import posting
from .entity import MAX_LENGTH
from .odata import norm_guid
from .store import (
    CUSTOMER_BLOCKED,
    INVOICE_STATUSES,
    NOT_BLOCKED,
    SANDBOX_COMPANY_ID,
    SANDBOX_JOURNAL_ID,
    Company,
    Customer,
    Invoice,
    Journal,
    guid_arg,
    seeded_company,
)

_ZERO = Decimal("0.00")


def _money(value: Decimal | int | str, what: str) -> Decimal:
    """A seed amount as an exact Decimal: a float is refused (it has lost the digits already)."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"{what} must be a Decimal (or int or str), not {type(value).__name__}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{what} must be a finite number")
    return amount


def _date_arg(value: date | str | None) -> str:
    if value is None or value == "":
        return ""
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(value).isoformat()


def _code(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise ValueError(f"{what} must be at most {limit} characters")
    return value.upper()


class Books:
    """Seed and inspection methods of `Sandbox` (which provides the lock and the companies)."""

    _lock: threading.RLock
    _companies: dict[str, Company]

    def _company(self, company_id: str) -> Company:
        company = self._companies.get(norm_guid(company_id) or "")
        if company is None:
            raise KeyError(f"no company {company_id}")
        return company

    def add_company(self, company_id: str | None = None, *, name: str = "Sandbox Company") -> str:
        """Add a company (the SANDBOX_CUSTOMERS and SANDBOX_INVOICES, no journals); returns its id."""
        cid = guid_arg(company_id)
        with self._lock:
            self._companies[cid] = seeded_company(name)
        return cid

    def set_company_currency(self, code: str, *, company_id: str = SANDBOX_COMPANY_ID) -> None:
        """A company's local currency (General Ledger Setup "LCY Code", Code[10]): what
        companyInformation.currencyCode shows, and the currencyCode of every blank-currency invoice."""
        if not code or len(code) > 10:
            raise ValueError("a currency code is 1 to 10 characters")
        with self._lock:
            self._company(company_id).currency_code = code.upper()

    def add_journal(
        self, journal_id: str | None = None, *, name: str = "CASH", company_id: str = SANDBOX_COMPANY_ID
    ) -> str:
        """Add a customer payment journal (batch name Code[10]) to a company; returns its id."""
        if not name or len(name) > MAX_LENGTH["journalDisplayName"]:
            raise ValueError("journal name must be 1 to 10 characters")
        jid = guid_arg(journal_id)
        with self._lock:
            self._company(company_id).journals[jid] = Journal(name.upper())
        return jid

    def add_customer(
        self,
        number: str,
        id: str | None = None,
        *,
        name: str = "",
        email: str = "",
        blocked: str = NOT_BLOCKED,
        currency_code: str = "",
        company_id: str = SANDBOX_COMPANY_ID,
    ) -> str:
        """Add (or replace) a customer (number Code[20], name Text[100], email Text[80]) to a company;
        `blocked` is the enum as API v2.0 writes it: "_x0020_" (not blocked; " " and "" are taken for
        it), "Ship", "Invoice" or "All". Returns its id."""
        with self._lock:
            customer = self._customer(number, id, name, email, blocked, currency_code)
            self._company(company_id).put_customer(customer)
        return customer.id

    def add_invoice(
        self,
        number: str,
        customer_number: str,
        id: str | None = None,
        *,
        status: str = "Open",
        amount: Decimal | int | str = _ZERO,
        remaining: Decimal | int | str | None = None,
        external_document_number: str = "",
        invoice_date: date | str | None = None,
        due_date: date | str | None = None,
        posting_date: date | str | None = None,
        currency_code: str = "",
        company_id: str = SANDBOX_COMPANY_ID,
    ) -> str:
        """Add (or replace) a sales invoice billed to a known customer; returns its id. `amount` is its
        total including tax; `remaining` defaults as page 30012's GetRemainingAmount shows it: the whole
        amount while Open (or not posted), nothing once Paid, Canceled or Corrective. A blank
        `currency_code` is the company's local currency."""
        with self._lock:
            company = self._company(company_id)
            invoice = self._invoice(
                company,
                number,
                customer_number,
                id,
                status=status,
                amount=amount,
                remaining=remaining,
                external_document_number=external_document_number,
                invoice_date=invoice_date,
                due_date=due_date,
                posting_date=posting_date,
                currency_code=currency_code,
            )
            company.put_invoice(invoice)
        return invoice.id

    def seed_receivables(
        self,
        customers: Iterable[Mapping[str, Any]] = (),
        invoices: Iterable[Mapping[str, Any]] = (),
        *,
        company_id: str = SANDBOX_COMPANY_ID,
    ) -> tuple[list[str], list[str]]:
        """Many customers, then many invoices, at once under one lock (a benchmark seeds thousands):
        each mapping holds add_customer's or add_invoice's arguments by name (`number`, and
        `customer_number` for an invoice). All are checked before any is stored. Returns their ids."""
        with self._lock:
            company = self._company(company_id)
            new_customers = [
                self._customer(
                    c["number"],
                    c.get("id"),
                    c.get("name", ""),
                    c.get("email", ""),
                    c.get("blocked", NOT_BLOCKED),
                    c.get("currency_code", ""),
                )
                for c in customers
            ]
            known = set(company.customers) | {c.number for c in new_customers}
            new_invoices = []
            for spec in invoices:
                args = dict(spec)
                number, customer = args.pop("number"), args.pop("customer_number")
                new_invoices.append(self._invoice(company, number, customer, known=known, **args))
            for customer in new_customers:
                company.put_customer(customer)
            for invoice in new_invoices:
                company.put_invoice(invoice)
        return [c.id for c in new_customers], [i.id for i in new_invoices]

    @staticmethod
    def _customer(
        number: str, id: str | None, name: str, email: str, blocked: str, currency: str
    ) -> Customer:
        if not number or len(number) > MAX_LENGTH["customerNumber"]:
            raise ValueError("customer number must be 1 to 20 characters")
        if len(name) > 100 or len(email) > 80:
            raise ValueError("a customer's name is at most 100 characters, its email at most 80")
        blocked = NOT_BLOCKED if blocked in ("", " ") else blocked
        if blocked not in CUSTOMER_BLOCKED:
            raise ValueError(f"blocked must be one of {CUSTOMER_BLOCKED}, not {blocked!r}")
        return Customer(
            number.upper(), guid_arg(id), name, email, blocked, _code(currency, 10, "currency code")
        )

    @staticmethod
    def _invoice(
        company: Company,
        number: str,
        customer_number: str,
        id: str | None = None,
        *,
        status: str = "Open",
        amount: Decimal | int | str = _ZERO,
        remaining: Decimal | int | str | None = None,
        external_document_number: str = "",
        invoice_date: date | str | None = None,
        due_date: date | str | None = None,
        posting_date: date | str | None = None,
        currency_code: str = "",
        known: set[str] | None = None,
    ) -> Invoice:
        if not number or len(number) > 20:
            raise ValueError("invoice number must be 1 to 20 characters")
        customer = customer_number.upper()
        if customer not in (known if known is not None else company.customers):
            raise ValueError(f"no customer {customer_number}")
        if status not in INVOICE_STATUSES:
            raise ValueError(f"status must be one of {INVOICE_STATUSES}, not {status!r}")
        total = _money(amount, "amount")
        if remaining is None:
            left = _ZERO if status in ("Paid", "Canceled", "Corrective") else total
        else:
            left = _money(remaining, "remaining")
        posted = _date_arg(posting_date)
        return Invoice(
            number.upper(),
            guid_arg(id),
            customer,
            status,
            total,
            left,
            external_document_number=_code(external_document_number, 35, "external document number"),
            invoice_date=_date_arg(invoice_date) or posted,
            posting_date=posted,
            due_date=_date_arg(due_date),
            currency_code=_code(currency_code, 10, "currency code"),
            seed_status=status,
            seed_remaining=left,
        )

    def set_work_date(self, work_date: date | None, *, company_id: str = SANDBOX_COMPANY_ID) -> None:
        """A company's WorkDate (an empty journal's default posting date); None: today."""
        with self._lock:
            self._company(company_id).work_date = work_date

    def payments(
        self, company_id: str = SANDBOX_COMPANY_ID, journal_id: str = SANDBOX_JOURNAL_ID
    ) -> list[dict]:
        """Copies of the stored payments in creation order (all properties; amount is a Decimal)."""
        with self._lock:
            journal = self._company(company_id).journals.get(norm_guid(journal_id) or "")
            if journal is None:
                raise KeyError(f"no journal {journal_id} in company {company_id}")
            return [dict(p) for p in journal.payments]

    def post_journal(self, company_id: str = SANDBOX_COMPANY_ID, journal_id: str = SANDBOX_JOURNAL_ID) -> int:
        """Post a journal as an accountant would (see `posting`); returns the lines posted."""
        with self._lock:
            company = self._company(company_id)
            return posting.post(company, company.journals[norm_guid(journal_id) or ""])

    def invoice(self, number: str, *, company_id: str = SANDBOX_COMPANY_ID) -> dict[str, Any]:
        """A copy of one invoice's state (status, remaining, amount...), for tests."""
        with self._lock:
            invoice = self._company(company_id).invoices[number.upper()]
            return dict(vars(invoice))

    def balance_due(self, customer_number: str, *, company_id: str = SANDBOX_COMPANY_ID) -> Decimal:
        """A customer's Balance Due as the customers API shows it."""
        with self._lock:
            return self._company(company_id).customer_records[customer_number.upper()].balance_due

    def ledger_entries(self, company_id: str = SANDBOX_COMPANY_ID) -> list[dict]:
        """Copies of the posted G/L entries, in entry order."""
        with self._lock:
            return [dict(e) for e in self._company(company_id).ledger_entries]
