"""The customerPayment entity as Business Central defines it: properties, types and lengths, how a POST
body is validated, how a payment is created (customer lookup, line numbers, Code[n] upper-casing), read
and rendered in either API form."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .odata import GUID_RE, NUMBER_RE, ODataError, norm_guid, parse_filter
from .routing import Route
from .store import DOCUMENT_SERIES_START, Company, Journal

EMPTY_GUID = "00000000-0000-0000-0000-000000000000"

_ENTITY_TYPE = "Microsoft.NAV.customerPayment"
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INT32_MAX = 2**31 - 1
AMOUNT_PRECISION = Decimal("0.01")  # General Ledger Setup "Amount Rounding Precision" (InitValue 0.01)

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


def _dialog(message: str) -> ODataError:
    """An AL `Error()` in a page trigger: NavNCLDialogException, which the API answers as
    Application_DialogException (docs: webservices/dynamics-error-codes.md)."""
    return ODataError(400, "Application_DialogException", message)


def _customer(company: Company, record: dict[str, Any]) -> tuple[str, str]:
    """customerId, then customerNumber, validated in page order (page 30055 OnValidate triggers):
    (number, id), both blank when no customer was given (the insert still succeeds)."""
    cust_id = record.get("customerId") or ""
    number = (record.get("customerNumber") or "").upper()
    from_id = ""
    if cust_id and cust_id != EMPTY_GUID:
        if cust_id not in company.customer_numbers:
            raise _dialog('The "customerId" does not match to a Customer.')
        from_id = company.customer_numbers[cust_id]
    if number:
        if from_id:
            if from_id != number:
                raise _dialog("The customer values do not match to a specific Customer.")
        elif number not in company.customers:
            raise _dialog('The "customerNumber" does not match to a Customer.')
    number = number or from_id
    return number, company.customers[number] if number else EMPTY_GUID


def _invoice(company: Company, record: dict[str, Any]) -> tuple[str, str, str]:
    """appliesToInvoiceId, then appliesToInvoiceNumber (page 30055): (id, number, its customer).
    An id must be a posted sales invoice; a number need not exist (then no id and no customer)."""
    inv_id = record.get("appliesToInvoiceId") or EMPTY_GUID
    number = (record.get("appliesToInvoiceNumber") or "").upper()
    from_id = ""
    customer = ""
    if inv_id != EMPTY_GUID:
        invoice = company.invoice_by_id(inv_id)
        if invoice is None or not invoice.posted:
            raise _dialog(
                'The "appliesToInvoiceId" should be the ID of an Open, Paid, Corrective, or Canceled Invoice.'
            )
        from_id, customer = invoice.number, invoice.customer
    if number and from_id and number != from_id:
        raise _dialog("The Applies To Invoice values do not match to the same Invoice.")
    number = number or from_id
    known = company.invoices.get(number)
    if known is not None and known.posted and inv_id == EMPTY_GUID:
        inv_id, customer = known.id, known.customer
    return inv_id, number, customer


def _next_document_number(previous: str) -> str:
    """IncStr: the rightmost number in the text plus one, keeping its width ("PAY-0009" -> "PAY-0010")."""
    match = re.search(r"(\d+)(?!.*\d)", previous)
    if match is None:
        return previous
    digits = match.group(1)
    bumped = str(int(digits) + 1).rjust(len(digits), "0")
    return previous[: match.start()] + bumped + previous[match.end() :]


def create(route: Route, company: Company, journal: Journal, record: dict[str, Any]) -> dict[str, Any]:
    """The journal line page 30055 and table 81 make of a POST, not yet inserted (see `insert`); its
    line number is read from the journal now. Called with the sandbox's lock held."""
    # OnInsertRecord: a journalId in the body must name the journal of the URL; the batch name comes
    # from that id, so a journalDisplayName in a POST body changes nothing.
    if record.get("journalId") not in (None, norm_guid(route.journal)):
        raise _dialog("The Journal Id and Journal Display Name do not match.")
    number, cust_id = _customer(company, record)
    inv_id, inv_number, inv_customer = _invoice(company, record)
    if not number and inv_customer:  # the invoice's (bill-to) customer, only when none was given
        number, cust_id = inv_customer, company.customers[inv_customer]

    line = record.get("lineNumber") or 0
    if line and line in journal.lines:
        raise _duplicate(journal, line)
    # InitializeLine / SetUpNewLine (table 81): defaults come from the line above (else the last one);
    # Line No. is the last line's + 10000 (GetNewLineNo), 10000 in an empty journal.
    previous = journal.above(line)
    if not line:
        line = journal.last["lineNumber"] + 10000 if journal.last is not None else 10000
    work_date = company.work_date or datetime.now(UTC).date()
    posting_date = record.get("postingDate") or (
        previous["postingDate"] if previous else work_date.isoformat()
    )
    document = str(record.get("documentNumber") or "").upper()
    if not document:
        if previous is None:
            document = DOCUMENT_SERIES_START
        elif previous is journal.last:  # at the bottom: the series' next number after the last line's
            document = _next_document_number(previous["documentNumber"])
        else:
            document = previous["documentNumber"]
    # Validate(Amount) rounds to the amount rounding precision (General Ledger Setup: 0.01).
    amount = Decimal(record.get("amount", Decimal(0)))
    if amount.as_tuple().exponent < AMOUNT_PRECISION.as_tuple().exponent:  # finer than 0.01: rounded
        amount = amount.quantize(AMOUNT_PRECISION, rounding=ROUND_HALF_UP)

    def code(key: str) -> str:
        assert key in _CODE_PROPS
        return str(record.get(key, "")).upper()

    stored: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "journalId": norm_guid(route.journal),
        "journalDisplayName": journal.name,
        "lineNumber": line,
        "customerId": cust_id,
        "customerNumber": number,
        "contactId": record.get("contactId", ""),
        "postingDate": posting_date,
        "documentNumber": document,
        "externalDocumentNumber": code("externalDocumentNumber"),
        "amount": amount,
        "appliesToInvoiceId": inv_id,
        "appliesToInvoiceNumber": inv_number,
        # Validating Account No. puts the customer's name in Description when none is given.
        "description": record.get("description") or company.customer_names.get(number, ""),
        "comment": record.get("comment", ""),
        "lastModifiedDateTime": _now_iso(),
    }
    return stored


def _duplicate(journal: Journal, line: int) -> ODataError:
    """A second line with the same primary key (NavCSideDuplicateKeyException)."""
    return ODataError(
        409,
        "Internal_EntityWithSameKeyExists",
        "The record in table Gen. Journal Line already exists. Identification fields and values: "
        f"Journal Template Name='CASHRCPT',Journal Batch Name='{journal.name}',Line No.='{line}'",
    )


def insert(journal: Journal, stored: dict[str, Any]) -> dict[str, Any]:
    """Insert a line `create` made. Its number was read from the journal earlier: if another insert took
    that number in between (GetNewLineNo reads the last line, then the insert writes), the primary key
    is a duplicate and nothing is created. Called with the sandbox's lock held."""
    if stored["lineNumber"] in journal.lines:
        raise _duplicate(journal, stored["lineNumber"])
    journal.add(stored)
    return dict(stored)


def render(stored: dict[str, Any], graph: bool, context: str | None = None) -> dict[str, Any]:
    """The entity as the given API form shows it: contactId on Graph only, journalId on BC only. Every
    entity carries its `@odata.etag`; a single one also the `@odata.context` (URL) it belongs to."""
    drop = "journalId" if graph else "contactId"
    head = {"@odata.context": context} if context is not None else {}
    head["@odata.etag"] = etag(stored)
    return {**head, **{k: v for k, v in stored.items() if k != drop}}


def etag(stored: dict[str, Any]) -> str:
    """A weak ETag in Business Central's shape (base64 of its row version). Lines are never modified
    here, so one derived from the id stays right for the line's life."""
    version = int(stored["id"].replace("-", "")[:16], 16) % 10**19
    tag = base64.b64encode(f"{len(str(version)) + 1};{version}1;00;".join("''").encode()).decode()
    return f'W/"{tag}"'


def read(
    route: Route, journal: Journal, query: dict[str, list[str]], root: str
) -> tuple[int, Any, dict[str, str]]:
    """Collection (`$filter`, `$top`) or entity read; called with the sandbox's lock held. `root` is
    the server's URL, which the `@odata.context` starts with."""
    if route.entity is not None:
        wanted = norm_guid(route.entity)
        for p in journal.payments:
            if p["id"] == wanted:
                return 200, render(p, route.graph, f"{root}{route.context}/$entity"), {}
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
    rendered = [render(p, route.graph) for p in rows]
    return 200, {"@odata.context": f"{root}{route.context}", "value": rendered}, {}
