"""Posting a customer payment journal, as Business Central's Gen. Jnl.-Post Batch does, and the posted
entries the API exposes afterwards (`generalLedgerEntries`, API v2.0 page 30018 "APIV2 - G/L Entries").

Every line is checked first, as codeunit "Gen. Jnl.-Check Line" does: if one fails, nothing is posted.
Then each line becomes two G/L entries (the customer's receivables account and the journal's balancing
bank account, credit and debit) and the journal's lines are deleted: a payment is no longer found in
the journal once its journal has been posted.

A payment that names an invoice (Applies-to Doc. No.) is applied to it as codeunit 12 "Gen. Jnl.-Post
Line" does: PrepareTempCustLedgEntry finds the customer's *open* invoice entry of that number (none:
"There is no Cust. Ledger Entry within the filter.", and nothing is posted), FindAmtForAppln applies
ABSMin(payment's remaining, invoice's remaining) - never more than the invoice still owes - and
CalcApplication closes the invoice when its remaining reaches 0 (the API then shows it Paid). What
the payment has left stays open on the payment's own entry: the customer's Balance Due counts it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .odata import ODataError, norm_guid, parse_filter
from .store import Company, Journal, now_iso

RECEIVABLES_ACCOUNT = "2310"  # the customer posting group's receivables account (Cronus: Customers Domestic)
BANK_ACCOUNT = "2910"  # the G/L account of the journal's balancing bank account
EMPTY = "00000000-0000-0000-0000-000000000000"

_LEDGER_ROUTE = re.compile(
    r"^(?:/beta/financials/companies/(?P<g>[^/]+)|.*/companies\((?P<b>[^)/]+)\))/generalLedgerEntries/?$",
    re.IGNORECASE,
)
# Page 30016 "APIV2 - Journals" has the bound action `post` (POST journals({id})/Microsoft.NAV.post). Its
# OnFindRecord looks a batch up by SystemId alone when the id is given (GetBySystemId, whatever its
# template), so a customer payment journal's id is accepted there; page 30013 (customerPaymentJournals)
# has no action at all. Graph beta's financials has journals/{id}/post, the same action.
_POST_ROUTE = re.compile(
    r"^(?:/beta/financials/companies/(?P<g>[^/]+)/journals/(?P<gj>[^/]+)/post"
    r"|.*/companies\((?P<b>[^)/]+)\)/journals\((?P<bj>[^)/]+)\)/Microsoft\.NAV\.post)/?$",
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
    Page 30016's PostBatch: no line is "There is nothing to post." (an Error: the API's
    Application_DialogException); then codeunit Gen. Jnl.-Post, which checks every line before posting
    any. Called with the sandbox's lock held."""
    lines = sorted(journal.payments, key=lambda line: line["lineNumber"])
    if not lines:
        raise ODataError(400, "Application_DialogException", "There is nothing to post.")
    for line in lines:
        check_line(journal, line)
    applied, unapplied = _applications(company, lines)
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
    for number, remaining in applied.items():
        invoice = company.invoices[number]
        company.customer_records[invoice.customer].balance_due -= invoice.remaining - remaining
        invoice.remaining, invoice.modified = remaining, now_iso()
        if remaining == 0:
            invoice.status = "Paid"
    for customer_number, rest in unapplied.items():
        customer = company.customer_records.get(customer_number)
        if customer is not None:
            customer.unapplied -= rest
            customer.balance_due -= rest
    journal.clear()  # Gen. Jnl.-Post Batch deletes the posted lines
    return len(lines)


def _applications(
    company: Company, lines: list[dict[str, Any]]
) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """What posting `lines` in order does to the invoices they name (number -> new remaining amount)
    and what each customer's payments leave unapplied (number -> amount, positive); nothing changes yet,
    so a line that cannot be applied fails the whole posting."""
    applied: dict[str, Decimal] = {}
    unapplied: dict[str, Decimal] = {}
    for line in lines:
        paid = -Decimal(line["amount"])  # positive: check_line made sure the payment is negative
        customer = line["customerNumber"]
        number = line["appliesToInvoiceNumber"]
        rest = paid
        if number:
            invoice = company.invoices.get(number)
            left = applied.get(number, invoice.remaining if invoice is not None else Decimal(0))
            if invoice is None or invoice.customer != customer or invoice.status != "Open" or left <= 0:
                raise ODataError(
                    400,
                    "Internal_DataNotFoundFilter",
                    "There is no Cust. Ledger Entry within the filter.  Filters: Document No.: "
                    f"{number}, Document Type: Invoice, Customer No.: {customer}, Open: Yes",
                )
            used = min(paid, left)  # FindAmtForAppln: ABSMin of the two remaining amounts
            applied[number] = left - used
            rest = paid - used
        if rest:
            unapplied[customer] = unapplied.get(customer, Decimal(0)) + rest
    return applied, unapplied


def entries(company: Company, query: dict[str, list[str]]) -> dict[str, Any]:
    """`generalLedgerEntries` with the `$filter` subset (e.g. `documentNumber eq 'PAY-1'`)."""
    clauses = parse_filter(query.get("$filter", [""])[0])
    return {"value": [dict(e) for e in company.ledger_entries if all(match(e) for match in clauses)]}


def company_of(companies: dict[str, Company], company_id: str) -> Company:
    company = companies.get(norm_guid(company_id) or "")
    if company is None:
        raise ODataError(404, "Internal_CompanyNotFound", f"Cannot find the company with id '{company_id}'.")
    return company
