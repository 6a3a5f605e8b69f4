"""What cash application reads from the books: `customers` (API v2.0 page 30009 "APIV2 - Customers"),
`salesInvoices` (page 30012 "APIV2 - Sales Invoices"), `companyInformation` (page 30011 "APIV2 -
Company Information") and `customerPaymentJournals` (page 30013 "APIV2 - Cust. Paym. Journals": the
batches of the default customer payments template, which its OnOpenPage filters on; every journal of the
sandbox is one), in either API form, read-only, with `$filter`, `$select`, `$top`, `$skip` and
server-driven paging (`@odata.nextLink` with a `$skiptoken`), as Business Central serves API pages.

Amounts are exact Decimals written without trailing zeros (Business Central's Edm.Decimal: 1500.00 is
written 1500, 0.30 is 0.3), never through a float.
"""

from __future__ import annotations

import re
import uuid
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from .entity import etag
from .odata import Call, Kind, ODataError, norm_guid, parse_select, parse_typed_filter
from .store import CUSTOMER_BLOCKED, INVOICE_STATUSES, Company, Customer, Invoice, Journal

# Business Central's maximum page size for OData/API pages, online and on-premises by default
# (dev-itpro/webservices/server-driven-paging-in-odata-web-services.md: "a maximum of 20,000 entities
# per page"; online it "can't be changed").
MAX_PAGE_SIZE = 20_000
BLANK_DATE = "0001-01-01"  # an empty AL Date, as the API writes it

ENTITY_SETS = ("customers", "salesInvoices", "companyInformation", "customerPaymentJournals")
_ENTITY_TYPE = {
    "customers": "customer",
    "salesInvoices": "salesInvoice",
    "companyInformation": "companyInformation",
    "customerPaymentJournals": "customerPaymentJournal",
}
_SCHEMA: dict[str, dict[str, Kind]] = {
    "customers": {
        "id": "guid",
        "number": "code",
        "displayName": "text",
        "email": "text",
        "blocked": CUSTOMER_BLOCKED,
        "balanceDue": "decimal",
        "currencyCode": "code",
        "lastModifiedDateTime": "datetime",
    },
    "salesInvoices": {
        "id": "guid",
        "number": "code",
        "externalDocumentNumber": "code",
        "invoiceDate": "date",
        "postingDate": "date",
        "dueDate": "date",
        "customerId": "guid",
        "customerNumber": "code",
        "customerName": "text",
        "currencyCode": "code",
        "totalAmountIncludingTax": "decimal",
        "remainingAmount": "decimal",
        "status": INVOICE_STATUSES,
        "lastModifiedDateTime": "datetime",
    },
    "companyInformation": {
        "id": "guid",
        "displayName": "text",
        "currencyCode": "code",
        "lastModifiedDateTime": "datetime",
    },
    "customerPaymentJournals": {
        "id": "guid",
        "code": "code",
        "displayName": "text",
        "lastModifiedDateTime": "datetime",
        "balancingAccountId": "guid",
        "balancingAccountNumber": "code",
    },
}
GRAPH_LACKS = frozenset(("remainingAmount",))  # salesInvoices properties API v2.0 has and Graph has not
_QUERY_OPTIONS = frozenset(("$filter", "$select", "$top", "$skip", "$skiptoken"))

_SETS = "|".join(ENTITY_SETS)
_GRAPH = re.compile(
    rf"^/beta/financials/companies/(?P<company>[^/]+)/(?P<set>{_SETS})"
    r"(?:/(?P<key>[^/]+))?/?$",
    re.IGNORECASE,
)
_BC = re.compile(
    rf"^(?P<root>.*/api/v2\.0)/companies\((?P<company>[^)/]+)\)/(?P<set>{_SETS})"
    r"(?:\((?P<key>[^)/]+)\))?/?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Target:
    """One receivables resource: its API form, company, entity set, key (an entity) and request path."""

    graph: bool
    company: str
    entity_set: str
    key: str | None
    path: str
    root: str  # the service root path ("/beta" or ".../api/v2.0")

    @property
    def context(self) -> str:
        """The `@odata.context` path of the entity set: the service root's `$metadata#`, then the set."""
        if self.graph:
            return f"{self.root}/$metadata#financials/companies('{self.company}')/{self.entity_set}"
        return f"{self.root}/$metadata#companies({self.company})/{self.entity_set}"

    @property
    def collection_path(self) -> str:
        if self.key is None:
            return self.path.rstrip("/")
        cut = self.path.rstrip("/").rfind("/" if self.graph else "(")
        return self.path[:cut]


def route(path: str) -> Target | None:
    """The receivables resource a path names, in either API form; None for anything else."""
    for regex, graph in ((_GRAPH, True), (_BC, False)):
        m = regex.match(path)
        if m:
            entity_set = next(s for s in ENTITY_SETS if s.lower() == m.group("set").lower())
            root = "/beta" if graph else m.group("root")
            return Target(graph, m.group("company"), entity_set, m.group("key"), path, root)
    return None


def _number(value: Decimal) -> Decimal:
    """An amount as Business Central writes an Edm.Decimal: its value, no trailing zeros, no exponent."""
    return Decimal(0) if value == 0 else value.normalize()


def _tag(record_id: str, modified: str) -> str:
    """A weak ETag that changes whenever the record does (Business Central's row version)."""
    return etag({"id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{record_id}/{modified}"))})


def render_customer(company: Company, c: Customer) -> dict[str, Any]:
    """Page 30009: currencyCode is TranslateNAVCurrencyCodeToCurrencyCode (the LCY code when blank)."""
    return {
        "@odata.etag": _tag(c.id, c.modified),
        "id": c.id,
        "number": c.number,
        "displayName": c.name,
        "email": c.email,
        "blocked": c.blocked,
        "balanceDue": _number(c.balance_due),
        "currencyCode": c.currency_code or company.currency_code,
        "lastModifiedDateTime": c.modified,
    }


def render_invoice(company: Company, i: Invoice) -> dict[str, Any]:
    """Page 30012: currencyCode as for customers; remainingAmount is GetRemainingAmount (0 when
    Canceled, the whole amount when not posted)."""
    customer = company.customer_records.get(i.customer)
    if i.status == "Canceled":
        remaining = Decimal(0)
    elif not i.posted:
        remaining = i.amount
    else:
        remaining = i.remaining
    return {
        "@odata.etag": _tag(i.id, i.modified),
        "id": i.id,
        "number": i.number,
        "externalDocumentNumber": i.external_document_number,
        "invoiceDate": i.invoice_date or BLANK_DATE,
        "postingDate": i.posting_date or BLANK_DATE,
        "dueDate": i.due_date or BLANK_DATE,
        "customerId": customer.id if customer else "00000000-0000-0000-0000-000000000000",
        "customerNumber": i.customer,
        "customerName": customer.name if customer else "",
        "currencyCode": i.currency_code or company.currency_code,
        "totalAmountIncludingTax": _number(i.amount),
        "remainingAmount": _number(remaining),
        "status": i.status,
        "lastModifiedDateTime": i.modified,
    }


def render_company(company: Company) -> dict[str, Any]:
    """Page 30011: currencyCode is General Ledger Setup's "LCY Code"."""
    return {
        "@odata.etag": _tag(company.id, "0"),
        "id": company.id,
        "displayName": company.name,
        "currencyCode": company.currency_code,
        "lastModifiedDateTime": "2024-01-01T00:00:00.000Z",
    }


def render_journal(journal_id: str, journal: Journal) -> dict[str, Any]:
    """Page 30013: code is the batch's Name, displayName its Description (the sandbox keeps one name);
    the sandbox's journals have no balancing account."""
    return {
        "@odata.etag": _tag(journal_id, "0"),
        "id": journal_id,
        "code": journal.name,
        "displayName": journal.name,
        "lastModifiedDateTime": "2024-01-01T00:00:00.000Z",
        "balancingAccountId": "00000000-0000-0000-0000-000000000000",
        "balancingAccountNumber": "",
    }


def _rows(company: Company, entity_set: str) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """(sort key, renderer) of every record, in key order (customers and invoices by No., journals by
    id, as the page's key SystemId orders them)."""
    if entity_set == "customerPaymentJournals":
        journals = sorted(company.journals.items())
        return [(k, lambda k=k, j=j: render_journal(k, j)) for k, j in journals]
    if entity_set == "customers":
        items = sorted(company.customer_records.items())
        return [(n, lambda c=c: render_customer(company, c)) for n, c in items]
    if entity_set == "salesInvoices":
        items = sorted(company.invoices.items())
        return [(n, lambda i=i: render_invoice(company, i)) for n, i in items]
    return [(company.id, lambda: render_company(company))]


def _count(query: dict[str, list[str]], name: str) -> int | None:
    text = query.get(name, [""])[0].strip()
    if not text:
        return None
    if not text.isdigit():
        raise ODataError(400, "BadRequest_InvalidToken", f"Invalid value '{text}' for {name}.")
    return int(text)


def _max_page_size(call: Call) -> int | None:
    """The client's `Prefer: odata.maxpagesize=N`, which Business Central honours below its own limit."""
    for part in (call.headers.get("Prefer") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit() and int(value) > 0:
            return int(value)
    return None


def read(
    call: Call, target: Target, company: Company, query: dict[str, list[str]], url: str, page_size: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """One answer (an entity, or one page of the collection) and its extra headers; called with the
    sandbox's lock held. `url` is the server's, which `@odata.context` and `@odata.nextLink` start with."""
    entity_type = _ENTITY_TYPE[target.entity_set]
    schema = _SCHEMA[target.entity_set]
    if target.graph and target.entity_set == "salesInvoices":
        # Graph's financials salesInvoice resource lists no remainingAmount (API v2.0's page 30012 added it).
        schema = {k: v for k, v in schema.items() if k not in GRAPH_LACKS}
    for name in query:
        if name.startswith("$") and name not in _QUERY_OPTIONS:
            raise ODataError(
                400,
                "BadRequest_MethodNotImplemented",
                f"The query option '{name}' is not supported by the sandbox.",
            )
    select = parse_select(query.get("$select", [""])[0], schema, entity_type)

    def shape(record: dict[str, Any]) -> dict[str, Any]:
        if target.graph:
            record = {k: v for k, v in record.items() if k in schema or k == "@odata.etag"}
        if select is None:
            return record
        return {"@odata.etag": record["@odata.etag"], **{k: record[k] for k in select}}

    rows = _rows(company, target.entity_set)
    if target.key is not None:
        wanted = norm_guid(target.key)
        for _, make in rows:
            record = make()
            if record["id"] == wanted:
                return {"@odata.context": f"{url}{target.context}/$entity", **shape(record)}, {}
        raise ODataError(
            404, "Internal_RecordNotFound", f"The {entity_type} with id '{target.key}' does not exist."
        )

    clauses = parse_typed_filter(query.get("$filter", [""])[0], schema, entity_type)
    token = query.get("$skiptoken", [""])[0]
    after = token[1:-1].replace("''", "'") if len(token) >= 2 and token[0] == token[-1] == "'" else token
    top, skip = _count(query, "$top"), _count(query, "$skip") or 0
    limit = page_size
    headers: dict[str, str] = {}
    preferred = _max_page_size(call)
    if preferred is not None:
        limit = min(limit, preferred)
        headers["Preference-Applied"] = f"odata.maxpagesize={preferred}"
    wanted_count = limit if top is None else min(limit, top)

    page: list[dict[str, Any]] = []
    last_key = ""
    more = False
    start = bisect_right([key for key, _ in rows], after) if after else 0
    for key, make in rows[start:]:
        record = make()
        if not all(match(record) for match in clauses):
            continue
        if skip:
            skip -= 1
            continue
        if len(page) == wanted_count:
            more = top is None or top > wanted_count
            break
        page.append(shape(record))
        last_key = key
    body: dict[str, Any] = {"@odata.context": f"{url}{target.context}", "value": page}
    if more:
        params = {k: v[0] for k, v in query.items() if k not in ("$skip", "$skiptoken", "$top")}
        if top is not None:
            params["$top"] = str(top - len(page))
        params["$skiptoken"] = "'" + last_key.replace("'", "''") + "'"
        encoded = urlencode(params, quote_via=quote, safe="$',()")
        body["@odata.nextLink"] = f"{url}{target.collection_path}?{encoded}"
    return body, headers
