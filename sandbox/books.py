"""The sandbox's books: seeding companies, journals, customers and invoices, and reading what they hold
(journal lines, posted entries), for tests and operators. A part of `Sandbox`, split out by concern."""

from __future__ import annotations

import threading
from datetime import date

from . import posting
from .entity import MAX_LENGTH
from .odata import norm_guid
from .store import (
    SANDBOX_COMPANY_ID,
    SANDBOX_CUSTOMER_NAMES,
    SANDBOX_CUSTOMERS,
    SANDBOX_INVOICES,
    SANDBOX_JOURNAL_ID,
    Company,
    Journal,
    guid_arg,
)


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
            self._companies[cid] = Company(
                name,
                customers=dict(SANDBOX_CUSTOMERS),
                customer_names=dict(SANDBOX_CUSTOMER_NAMES),
                invoices=dict(SANDBOX_INVOICES),
            )
        return cid

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
        self, number: str, id: str | None = None, *, company_id: str = SANDBOX_COMPANY_ID
    ) -> str:
        """Add a customer (number Code[20]) to a company; returns its id."""
        if not number or len(number) > MAX_LENGTH["customerNumber"]:
            raise ValueError("customer number must be 1 to 20 characters")
        cust_id = guid_arg(id)
        with self._lock:
            self._company(company_id).customers[number.upper()] = cust_id
        return cust_id

    def add_invoice(
        self,
        number: str,
        customer_number: str,
        id: str | None = None,
        *,
        status: str = "Open",
        company_id: str = SANDBOX_COMPANY_ID,
    ) -> str:
        """Add a posted sales invoice billed to a known customer; returns its id."""
        inv_id = guid_arg(id)
        with self._lock:
            company = self._company(company_id)
            if customer_number.upper() not in company.customers:
                raise ValueError(f"no customer {customer_number}")
            company.invoices[number.upper()] = (inv_id, customer_number.upper(), status)
        return inv_id

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

    def ledger_entries(self, company_id: str = SANDBOX_COMPANY_ID) -> list[dict]:
        """Copies of the posted G/L entries, in entry order."""
        with self._lock:
            return [dict(e) for e in self._company(company_id).ledger_entries]
