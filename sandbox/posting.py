"""Posting a customer payment journal, as Business Central's Gen. Jnl.-Post Batch does, and the posted
entries the API exposes afterwards (`generalLedgerEntries`, API v2.0 page 30018 "APIV2 - G/L Entries").

Every line is checked first, as codeunit "Gen. Jnl.-Check Line" does: if one fails, nothing is posted.
Then each line becomes two G/L entries (the customer's receivables account and the journal's balancing
bank account, credit and debit) and the journal's lines are deleted: a payment is no longer found in
the journal once its journal has been posted.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .odata import ODataError, norm_guid, parse_filter
from .store import Company, Journal

RECEIVABLES_ACCOUNT = "2310"  # the customer posting group's receivables account (Cronus: Customers Domestic)
BANK_ACCOUNT = "2910"  # the G/L account of the journal's balancing bank account
EMPTY = "00000000-0000-0000-0000-000000000000"

_LEDGER_ROUTE = re.compile(
    r"^(?:/beta/financials/companies/(?P<g>[^/]+)|.*/companies\((?P<b>[^)/]+)\))/generalLedgerEntries/?$",
    re.IGNORECASE,
)
_POST_ROUTE = re.compile(
    r"^(?:/beta/financials/companies/(?P<g>[^/]+)/customerPaymentJournals/(?P<gj>[^/]+)"
    r"|.*/companies\((?P<b>[^)/]+)\)/customerPaymentJournals\((?P<bj>[^)/]+)\))/Microsoft\.NAV\.post/?$",
    re.IGNORECASE,
)


def route(path: str) -> tuple[str, str, str | None, bool] | None:
    """("entries" | "post", company, journal, graph) for the posting resources; None for anything else."""
    m = _LEDGER_ROUTE.match(path)
    if m:
        return "entries", m.group("g") or m.group("b"), None, m.group("g") is not None
    m = _POST_ROUTE.match(path)
    if m:
        graph = m.group("g") is not None
        return "post", m.group("g") or m.group("b"), m.group("gj") or m.group("bj"), graph
    return None


def _line_key(journal: Journal, line: dict[str, Any]) -> str:
    return f"Journal Template Name=CASHRCPT, Journal Batch Name={journal.name}, Line No.={line['lineNumber']}"


def check_line(journal: Journal, line: dict[str, Any]) -> None:
    """Gen. Jnl.-Check Line for a customer payment: TestField on Account No., Posting Date, Document No.
    and Amount (not zero), and CheckDocType's "must be negative" for a payment from a customer."""
    where = _line_key(journal, line)
    for field, name in (
        ("customerNumber", "Account No."),
        ("postingDate", "Posting Date"),
        ("documentNumber", "Document No."),
    ):
        if not line[field]:
            raise ODataError(
                400,
                "Application_FieldValidationException",
                f"{name} must have a value in Gen. Journal Line: {where}. It cannot be zero or empty.",
            )
    if not line["amount"]:
        raise ODataError(
            400,
            "Application_FieldValidationException",
            f"Amount must have a value in Gen. Journal Line: {where}. It cannot be zero or empty.",
        )
    if line["amount"] > 0:  # FieldError(Amount, 'must be negative')
        raise ODataError(
            400,
            "Application_FieldValidationException",
            "Amount must be negative in Gen. Journal Line Journal Template Name='CASHRCPT',"
            f"Journal Batch Name='{journal.name}',Line No.='{line['lineNumber']}'.",
        )


def post(company: Company, journal: Journal) -> int:
    """Post every line of `journal` into `company`'s G/L entries, all or nothing; returns how many lines.
    Called with the sandbox's lock held."""
    lines = sorted(journal.payments, key=lambda line: line["lineNumber"])
    for line in lines:
        check_line(journal, line)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for line in lines:
        paid = -Decimal(line["amount"])  # a payment received: credit receivables, debit the bank
        for account, debit, credit in (
            (RECEIVABLES_ACCOUNT, Decimal(0), paid),
            (BANK_ACCOUNT, paid, Decimal(0)),
        ):
            company.ledger_entries.append(
                {
                    "id": str(uuid.uuid4()),
                    "entryNumber": len(company.ledger_entries) + 1,
                    "postingDate": line["postingDate"],
                    "documentNumber": line["documentNumber"],
                    "documentType": "Payment",
                    "accountId": EMPTY,
                    "accountNumber": account,
                    "description": line["description"],
                    "debitAmount": debit,
                    "creditAmount": credit,
                    "additionalCurrencyDebitAmount": Decimal(0),
                    "additionalCurrencyCreditAmount": Decimal(0),
                    "lastModifiedDateTime": now,
                }
            )
    journal.clear()  # Gen. Jnl.-Post Batch deletes the posted lines
    return len(lines)


def entries(company: Company, query: dict[str, list[str]]) -> dict[str, Any]:
    """`generalLedgerEntries` with the `$filter` subset (e.g. `documentNumber eq 'PAY-1'`)."""
    clauses = parse_filter(query.get("$filter", [""])[0])
    return {"value": [dict(e) for e in company.ledger_entries if all(match(e) for match in clauses)]}


def company_of(companies: dict[str, Company], company_id: str) -> Company:
    company = companies.get(norm_guid(company_id) or "")
    if company is None:
        raise ODataError(404, "Internal_CompanyNotFound", f"Cannot find the company with id '{company_id}'.")
    return company
