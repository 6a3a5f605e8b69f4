"""Offline loopback emulator of the customerPayments endpoint. FOR DEVELOPMENT AND TESTS ONLY.

Never point production traffic at it and never expose it beyond the loopback interface: it keeps
everything in memory, accepts any bearer token and hands out fake managed-identity tokens. It exists
so the relay can be developed, demonstrated, tested and benchmarked without a tenant. It is not part of
the deployed `payments` package and never imports it.

It speaks both path forms of the target (Microsoft Graph beta `/financials/...` and Business Central
API v2.0 `companies(<id>)/...`), validates a POST the way Business Central does as far as we know it
(error codes, Code[n]/Text[n] lengths, upper-cased code fields, customer lookup, duplicate line
numbers), keeps amounts as exact `Decimal` from request bytes to response bytes, can inject faults
(throttling, gateway errors, dropped connections, hung requests) and emulates the App Service
managed identity endpoint (`/msi/token`, api-version 2019-08-01). Its `latency` is the time each
operation takes, its own processing included, as a real service's would be. Its `limits` are Business
Central online's, per identity: five requests processed at once, 95 more queued (a queued request runs
even if its client gave up), `429` beyond the queue or 6,000 requests in five minutes, `503` after eight
minutes in the queue, `408`/`504` at the operation and request timeouts.

It also answers JSON batching (`POST {base}/$batch`) in both forms: Graph (`/beta/$batch`, at most 20
inner requests, inner urls like `/financials/...`) and Business Central (`.../api/v2.0/$batch`, at most
100, inner urls like `companies(<id>)/...`). A batch is one HTTP request for the limits and the
`inject()` faults; its inner requests run one after another, each taking the latency, each handled like
a standalone one, and each may get an `inject_inner()` fault of its own. Inner responses come back in
reverse order: clients must map them by id.

For cash application it serves `customers`, `salesInvoices` and `companyInformation` read-only in both
forms (`receivables`), with `$filter`, `$select`, `$top`, `$skip` and server-driven paging (`page_size`
records per answer, then an `@odata.nextLink`); posting a journal applies its payments to the invoices
they name.

Run standalone: ``python -m sandbox --port 8400 --latency 0.05``.

Modules: `service` (the `Sandbox`: lifecycle, seed, inspection, dispatch), `server` (HTTP server and
handler, latency), `limits` (per-identity concurrency, queue, rate and timeouts), `routing` (paths),
`batch` ($batch), `entity` (customerPayment rules), `receivables` (customers, sales invoices, company
information), `odata` (errors, `$filter`), `faults`, `store`
(companies, journals, seed), `identity` (token endpoint), `jsonio` (exact-Decimal JSON), `cli`
(`python -m sandbox`).
"""

from .cli import main
from .entity import EMPTY_GUID
from .faults import FAULTS, INNER_FAULTS, TIMEOUT_HOLD_SECONDS
from .identity import SANDBOX_CLIENT_ID, SANDBOX_TOKEN_HEADER
from .jsonio import dumps
from .limits import Limits
from .receivables import MAX_PAGE_SIZE
from .routing import BC_BATCH_LIMIT, GRAPH_BATCH_LIMIT
from .server import IDLE_CONNECTION_SECONDS
from .service import WARNING_TEXT, Sandbox
from .store import (
    SANDBOX_COMPANY_ID,
    SANDBOX_COMPANY_NAME,
    SANDBOX_CURRENCY,
    SANDBOX_CUSTOMERS,
    SANDBOX_INVOICES,
    SANDBOX_JOURNAL_ID,
    SANDBOX_JOURNAL_NAME,
    RecordedRequest,
)

__all__ = [
    "BC_BATCH_LIMIT",
    "EMPTY_GUID",
    "FAULTS",
    "GRAPH_BATCH_LIMIT",
    "IDLE_CONNECTION_SECONDS",
    "INNER_FAULTS",
    "MAX_PAGE_SIZE",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_COMPANY_ID",
    "SANDBOX_COMPANY_NAME",
    "SANDBOX_CURRENCY",
    "SANDBOX_CUSTOMERS",
    "SANDBOX_INVOICES",
    "SANDBOX_JOURNAL_ID",
    "SANDBOX_JOURNAL_NAME",
    "SANDBOX_TOKEN_HEADER",
    "TIMEOUT_HOLD_SECONDS",
    "WARNING_TEXT",
    "Limits",
    "RecordedRequest",
    "Sandbox",
    "dumps",
    "main",
]
