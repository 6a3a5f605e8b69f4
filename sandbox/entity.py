"""The customerPayment entity as Business Central defines it: properties, types and lengths, how a POST
body is validated, how a payment is created (customer lookup, line numbers, Code[n] upper-casing), read
and rendered in either API form."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .odata import GUID_RE, NUMBER_RE, ODataError, norm_guid, parse_filter
from .routing import Route
from .store import Company, Journal

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"

_ENTITY_TYPE = "Microsoft.NAV.customerPayment"
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT32_MAX = 2**31 - 1

# Properties of the entity as Business Central exposes them, in response order.
_COMMON_PROPS = (
    "journalDisplayName",
    "lineNumber",
    "customerId",
    "customerNumber",
    "postingDate",
    "documentNumber",
    "externalDocumentNumber",
    "amount",
    "appliesToInvoiceId",
    "appliesToInvoiceNumber",
    "description",
    "comment",
)
_GRAPH_PROPS = frozenset((*_COMMON_PROPS, "contactId"))
_BC_PROPS = frozenset((*_COMMON_PROPS, "journalId"))
_READ_ONLY = frozenset(("id", "lastModifiedDateTime"))
_GUID_PROPS = ("customerId", "appliesToInvoiceId", "journalId")
_STRING_PROPS = (
    "journalDisplayName",
    "customerNumber",
    "contactId",
    "documentNumber",
    "externalDocumentNumber",
    "appliesToInvoiceNumber",
    "description",
    "comment",
)
MAX_LENGTH = {
    "journalDisplayName": 10,
    "customerNumber": 20,
    "contactId": 250,
    "documentNumber": 20,
    "externalDocumentNumber": 35,
    "appliesToInvoiceNumber": 20,
    "description": 100,
    "comment": 250,
}
# Code[n] columns: Business Central stores them upper-cased. External Document No. is Code[35] in BC.
_CODE_PROPS = frozenset(
    (
        "journalDisplayName",
        "customerNumber",
        "documentNumber",
        "externalDocumentNumber",
        "appliesToInvoiceNumber",
    )
)
_EDM_TYPE = {
    "lineNumber": "Edm.Int32",
    "postingDate": "Edm.Date",
    "amount": "Edm.Decimal",
    **{name: "Edm.Guid" for name in _GUID_PROPS},
    **{name: "Edm.String" for name in _STRING_PROPS},
}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def validate(data: Any, graph: bool) -> dict[str, Any]:
    """The writable properties of a parsed POST body, checked and normalised, or the error BC answers."""
    if not isinstance(data, dict):
        raise ODataError(400, "BadRequest_InvalidRequestBody", "The request body must be a JSON object.")
    allowed = _GRAPH_PROPS if graph else _BC_PROPS
    record: dict[str, Any] = {}
    for key, value in data.items():
        if key in _READ_ONLY or key.startswith("@odata."):
            continue
        if key not in allowed:
            raise ODataError(
                400,
                "BadRequest_InvalidRequestBody",
                f"The property '{key}' does not exist on type '{_ENTITY_TYPE}'. Make sure to only use "
                "property names that are defined by the type.",
            )
        if value is None:
            raise ODataError(
                400,
                "BadRequest_InvalidRequestBody",
                f"A null value was found for the property named '{key}', which has the expected type "
                f"'{_EDM_TYPE[key]}[Nullable=False]'. The expected type does not allow null values.",
            )
        record[key] = value
    _check_types(record)
    for key, limit in MAX_LENGTH.items():
        value = record.get(key)
        if isinstance(value, str) and len(value) > limit:
            raise ODataError(
                400,
                "Application_StringExceededLength",
                f"The length of the string is {len(value)}, but it must be less than or equal to {limit} "
                f"characters. Value: {value}",
            )
    return record


def _check_types(record: dict[str, Any]) -> None:
    def bad(key: str, value: Any) -> ODataError:
        return ODataError(
            400,
            "BadRequest_InvalidRequestBody",
            f"Cannot convert the literal '{value}' to the expected type '{_EDM_TYPE[key]}'.",
        )

    for key in _GUID_PROPS:
        if key in record:
            value = record[key]
            norm = norm_guid(value) if isinstance(value, str) else None
            if norm is None or not GUID_RE.fullmatch(value):
                raise ODataError(400, "Application_InvalidGUID", f"Invalid GUID string format: '{value}'.")
            record[key] = norm
    for key in _STRING_PROPS:
        if key in record and not isinstance(record[key], str):
            raise bad(key, record[key])
    if "lineNumber" in record:
        value = record["lineNumber"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT32_MAX:
            raise bad("lineNumber", value)
    if "postingDate" in record:
        value = record["postingDate"]
        if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
            raise bad("postingDate", value)
        try:
            date.fromisoformat(value)
        except ValueError:
            raise bad("postingDate", value) from None
    if "amount" in record:
        value = record["amount"]
        if isinstance(value, bool):
            raise bad("amount", value)
        if isinstance(value, int):
            record["amount"] = Decimal(value)
        elif isinstance(value, str) and NUMBER_RE.fullmatch(value):
            try:
                record["amount"] = Decimal(value)
            except InvalidOperation:
                raise bad("amount", value) from None
        elif not isinstance(value, Decimal):
            raise bad("amount", value)


def find_journal(companies: dict[str, Company], route: Route) -> Journal:
    """The journal a route names, or the 404 Business Central answers; called with the sandbox's lock held."""
    company = companies.get(norm_guid(route.company) or "")
    if company is None:
        raise ODataError(
            404, "Internal_CompanyNotFound", f"Cannot find the company with id '{route.company}'."
        )
    journal = company.journals.get(norm_guid(route.journal) or "")
    if journal is None:
        raise ODataError(
            404,
            "BadRequest_NotFound",
            f"The customerPaymentJournal with id '{route.journal}' does not exist.",
        )
    return journal


def create(route: Route, company: Company, journal: Journal, record: dict[str, Any]) -> dict[str, Any]:
    """Resolve the customer, check the line number and store; called with the sandbox's lock held."""
    number = (record.get("customerNumber") or "").upper()
    cust_id = record.get("customerId") or ""
    if cust_id == EMPTY_GUID:
        cust_id = ""
    if not number and not cust_id:
        raise ODataError(
            400, "Application_DialogException", "A customerNumber or a customerID must be provided."
        )
    if number and number not in company.customers:
        raise ODataError(
            400,
            "Internal_RecordNotFound",
            f"The Customer does not exist. Identification fields and values: No.='{number}'",
        )
    by_id = {v: k for k, v in company.customers.items()}
    if cust_id and cust_id not in by_id:
        raise ODataError(
            400,
            "Internal_RecordNotFound",
            "The Customer does not exist. Identification fields and values: "
            f"SystemId='{{{cust_id.upper()}}}'",
        )
    if number and cust_id and company.customers[number] != cust_id:
        raise ODataError(
            400,
            "Application_DialogException",
            f"The customerNumber '{number}' and the customerId '{cust_id}' "
            "do not identify the same customer.",
        )
    if not number:
        number = by_id[cust_id]
    cust_id = company.customers[number]

    used = journal.lines
    line = record.get("lineNumber") or 0
    if line and line in used:
        raise ODataError(
            409,
            "Internal_EntityWithSameKeyExists",
            "The record in table Gen. Journal Line already exists. Identification fields and values: "
            f"Journal Template Name='CASHRCPT',Journal Batch Name='{journal.name}',Line No.='{line}'",
        )
    if not line:
        line = (journal.max_line // 10000 + 1) * 10000

    def code(key: str, default: str = "") -> str:
        assert key in _CODE_PROPS
        return str(record.get(key, default)).upper()

    stored: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "journalId": norm_guid(route.journal),
        "journalDisplayName": code("journalDisplayName", journal.name),
        "lineNumber": line,
        "customerId": cust_id,
        "customerNumber": number,
        "contactId": record.get("contactId", ""),
        "postingDate": record.get("postingDate") or datetime.now(UTC).date().isoformat(),
        "documentNumber": code("documentNumber"),
        "externalDocumentNumber": code("externalDocumentNumber"),
        "amount": record.get("amount", Decimal(0)),
        "appliesToInvoiceId": record.get("appliesToInvoiceId", EMPTY_GUID),
        "appliesToInvoiceNumber": code("appliesToInvoiceNumber"),
        "description": record.get("description", ""),
        "comment": record.get("comment", ""),
        "lastModifiedDateTime": _now_iso(),
    }
    journal.add(stored)
    return dict(stored)


def render(stored: dict[str, Any], graph: bool) -> dict[str, Any]:
    """The entity as the given API form shows it: contactId on Graph only, journalId on BC only."""
    drop = "journalId" if graph else "contactId"
    return {k: v for k, v in stored.items() if k != drop}


def read(route: Route, journal: Journal, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
    """Collection (`$filter`, `$top`) or entity read; called with the sandbox's lock held."""
    if route.entity is not None:
        wanted = norm_guid(route.entity)
        for p in journal.payments:
            if p["id"] == wanted:
                return 200, render(p, route.graph), {}
        raise ODataError(
            404, "Internal_RecordNotFound", f"The customerPayment '{route.entity}' does not exist."
        )
    clauses = parse_filter(query.get("$filter", [""])[0])
    rows = [p for p in journal.payments if all(match(p) for match in clauses)]
    top = query.get("$top", [""])[0]
    if top:
        if not top.isdigit():
            raise ODataError(400, "BadRequest_InvalidToken", f"Invalid value '{top}' for $top.")
        rows = rows[: int(top)]
    return 200, {"value": [render(p, route.graph) for p in rows]}, {}
