"""What the sandbox keeps in memory: companies, their journals and customers, the seed, recorded requests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
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
    lines: set[int] = field(default_factory=set)  # line numbers in use: O(1) checks for big files
    max_line: int = 0

    def add(self, stored: dict[str, Any]) -> None:
        self.payments.append(stored)
        self.lines.add(stored["lineNumber"])
        self.max_line = max(self.max_line, stored["lineNumber"])

    def clear(self) -> None:
        self.payments.clear()
        self.lines.clear()
        self.max_line = 0


@dataclass
class Company:
    name: str
    journals: dict[str, Journal] = field(default_factory=dict)
    customers: dict[str, str] = field(default_factory=dict)  # upper-case number -> lower-case id


def seed_companies() -> dict[str, Company]:
    """The seed every sandbox starts with: one company, its journal and the SANDBOX_CUSTOMERS."""
    return {
        SANDBOX_COMPANY_ID: Company(
            SANDBOX_COMPANY_NAME,
            journals={SANDBOX_JOURNAL_ID: Journal(SANDBOX_JOURNAL_NAME)},
            customers=dict(SANDBOX_CUSTOMERS),
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
