"""What the sandbox keeps in memory: companies, their journals and customers, the seed, recorded requests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
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
# Posted sales invoices: number -> (id, bill-to customer number, status).
SANDBOX_INVOICES: dict[str, tuple[str, str, str]] = {
    "103001": ("a1000001-0000-4000-8000-000000103001", "10000", "Open"),
    "103002": ("a1000002-0000-4000-8000-000000103002", "20000", "Paid"),
}
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


@dataclass
class Company:
    name: str
    journals: dict[str, Journal] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)  # upper-case number -> lower-case id
    customer_names: dict[str, str] = field(default_factory=dict)  # upper-case number -> name
    invoices: dict[str, tuple[str, str, str]] = field(
        default_factory=dict
    )  # number -> (id, customer, status)
    work_date: date | None = None  # Business Central's WorkDate; None: today
    ledger_entries: list[dict[str, Any]] = field(default_factory=list)  # posted G/L entries


def extra_journals(total: int) -> list[tuple[int, str]]:
    """Journals 2..total beyond the seeded one, as (number, id): ids fixed, so a client started apart
    from the sandbox (a benchmark) knows them."""
    return [
        (n, str(uuid.uuid5(uuid.NAMESPACE_URL, f"payments-sandbox/journal/{n}"))) for n in range(2, total + 1)
    ]


def seed_companies() -> dict[str, Company]:
    """The seed every sandbox starts with: one company, its journal and the SANDBOX_CUSTOMERS."""
    return {
        SANDBOX_COMPANY_ID: Company(
            SANDBOX_COMPANY_NAME,
            journals={SANDBOX_JOURNAL_ID: Journal(SANDBOX_JOURNAL_NAME)},
            customers=dict(SANDBOX_CUSTOMERS),
            customer_names=dict(SANDBOX_CUSTOMER_NAMES),
            invoices=dict(SANDBOX_INVOICES),
        )
    }


def guid_arg(value: str | None) -> str:
    """The canonical form of a GUID given to a seed helper (ValueError if it is none), or a new one."""
    if value is None:
        return str(uuid.uuid4())
    norm = norm_guid(value)
    if norm is None:
        raise ValueError(f"{value!r} is not a GUID")
    return norm
