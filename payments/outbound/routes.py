"""Where things are at the target, in its own URL and OData syntax.

Graph (`/beta/financials/companies/{c}/...`) and Business Central API v2.0 (`companies({c})/...`)
address the same collection differently; a JSON `$batch` addresses it relative to the API root.
"""

from __future__ import annotations

from urllib.parse import quote

from ..settings import Settings, Target


class Routes:
    """The target's URLs for one configured API root."""

    def __init__(self, target: Target, base_url: str):
        self.target = target
        self.base_url = base_url
        self.batch_url = f"{base_url}/$batch"

    @classmethod
    def of(cls, settings: Settings) -> Routes:
        return cls(settings.target, settings.base_url)

    def collection_path(self, company_id: str, journal_id: str) -> str:
        """The customerPayments collection relative to the API root, in the target's own form (never
        `/$ref`); as a JSON batch addresses it: Graph with a leading slash, Business Central without."""
        c, j = quote(company_id, safe=""), quote(journal_id, safe="")
        if self.target == "graph":
            return f"/financials/companies/{c}/customerPaymentJournals/{j}/customerPayments"
        return f"companies({c})/customerPaymentJournals({j})/customerPayments"

    def collection_url(self, company_id: str, journal_id: str) -> str:
        return f"{self.base_url}/{self.collection_path(company_id, journal_id).lstrip('/')}"

    def search_url(self, company_id: str, journal_id: str, odata_filter: str) -> str:
        return self.collection_url(company_id, journal_id) + "?$filter=" + quote(odata_filter, safe="")

    def company_url(self, company_id: str, entity: str, query: dict[str, str] | None = None) -> str:
        """A company's entity set (`customers`, `salesInvoices`, `generalLedgerEntries`...), with OData
        query options (`$filter`, `$select`) encoded."""
        c = quote(company_id, safe="")
        company = f"financials/companies/{c}" if self.target == "graph" else f"companies({c})"
        url = f"{self.base_url}/{company}/{entity}"
        if query:
            url += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        return url

    def journal_post_url(self, company_id: str, journal_id: str) -> str:
        """The bound action that posts a journal: page 30016 "APIV2 - Journals" (`journals({id})`), which
        takes any journal batch's id, a customer payment journal's included; Graph's `journals/{id}/post`."""
        c, j = quote(company_id, safe=""), quote(journal_id, safe="")
        if self.target == "graph":
            return f"{self.base_url}/financials/companies/{c}/journals/{j}/post"
        return f"{self.base_url}/companies({c})/journals({j})/Microsoft.NAV.post"

    def posted_entries_url(self, company_id: str, odata_filter: str) -> str:
        """The company's posted G/L entries (`generalLedgerEntries`) matching a `$filter`."""
        return self.company_url(company_id, "generalLedgerEntries", {"$filter": odata_filter})

    def same_service(self, url: str) -> bool:
        """A URL the target handed back (`@odata.nextLink`) is under the configured API root, so
        following it sends the token nowhere else."""
        return url.startswith(self.base_url + "/") or url.startswith(self.base_url + "?")


def posted_filter(natural: dict[str, str]) -> str:
    """The `$filter` that finds a payment's posted G/L entries: its documentNumber, the one natural key
    that survives posting (generalLedgerEntries has no externalDocumentNumber)."""
    return "documentNumber eq '" + natural["documentNumber"].upper().replace("'", "''") + "'"


def odata_filter(natural: dict[str, str]) -> str:
    """The `$filter` that finds a payment by its natural key (Code fields upper-case, as stored)."""
    clauses = []
    for name in ("documentNumber", "externalDocumentNumber", "customerNumber"):
        if natural.get(name):
            literal = natural[name].upper().replace("'", "''")
            clauses.append(f"{name} eq '{literal}'")
    if natural.get("customerId") and not natural.get("customerNumber"):
        clauses.append(f"customerId eq {natural['customerId']}")
    if natural.get("amount"):
        clauses.append(f"amount eq {natural['amount']}")
    return " and ".join(clauses)
