"""Which resource a path names: the customerPayments collection or entity in either API form, a `$batch`
endpoint, and the resolution of a batch's inner urls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qs, unquote, urlsplit

GRAPH_BATCH_LIMIT = 20  # Graph JSON batching: at most 20 requests per batch
BC_BATCH_LIMIT = 100  # Business Central $batch: at most 100 operations

# Graph has `/financials` under `/beta` only (REFERENCE 1: v1.0 has none).
_GRAPH_ROUTE = re.compile(
    r"^/beta/financials/companies/(?P<company>[^/]+)/customerPaymentJournals/(?P<journal>[^/]+)"
    r"/customerPayments(?:/(?P<entity>[^/$][^/]*))?/?$",
    re.IGNORECASE,
)
_BC_ROUTE = re.compile(
    r"/companies\((?P<company>[^)/]+)\)/customerPaymentJournals\((?P<journal>[^)/]+)\)"
    r"/customerPayments(?:\((?P<entity>[^)/]+)\))?/?$",
    re.IGNORECASE,
)
_BATCH_PATH = re.compile(r"(?P<prefix>.*)/\$batch/?", re.IGNORECASE)
_GRAPH_BASES = ("/beta",)
_BC_API_ROOT = re.compile(r"(?:/v2\.0(?:/[^/]+){1,2})?/api/v2\.0", re.IGNORECASE)


@dataclass(frozen=True)
class Route:
    graph: bool
    company: str
    journal: str
    entity: str | None
    collection_path: str

    @property
    def context(self) -> str:
        """The collection's `@odata.context` path: the service root's `$metadata#`, then the entity set."""
        if self.graph:
            root = self.collection_path[: self.collection_path.index("/financials/")]
            entity_set = f"financials/companies('{self.company}')/customerPaymentJournals('{self.journal}')"
        else:
            root = self.collection_path[: self.collection_path.index("/companies(")]
            entity_set = f"companies({self.company})/customerPaymentJournals({self.journal})"
        return f"{root}/$metadata#{entity_set}/customerPayments"


@dataclass(frozen=True)
class BatchEndpoint:
    """A `$batch` endpoint: its API form, the base its relative inner urls hang off, its size limit."""

    graph: bool
    prefix: str
    limit: int


@lru_cache(maxsize=1024)
def route(path: str) -> Route | None:
    """The customerPayments collection or entity a path names, in either API form; None for anything else."""
    for regex, graph in ((_GRAPH_ROUTE, True), (_BC_ROUTE, False)):
        m = regex.search(path)
        if m:
            collection = path[: m.start()] + path[m.start() : m.end()].rstrip("/")
            if m.group("entity") is not None:
                cut = collection.rfind("/") if graph else collection.rfind("(")
                collection = collection[:cut]
            return Route(graph, m.group("company"), m.group("journal"), m.group("entity"), collection)
    return None


def batch_endpoint(path: str) -> BatchEndpoint | None:
    """`/beta/$batch` (Graph) or `.../api/v2.0/$batch` (Business Central); None for anything else."""
    m = _BATCH_PATH.fullmatch(path)
    if m is None:
        return None
    prefix = m.group("prefix")
    if prefix.lower() in _GRAPH_BASES:
        return BatchEndpoint(True, prefix, GRAPH_BATCH_LIMIT)
    if _BC_API_ROOT.fullmatch(prefix):
        return BatchEndpoint(False, prefix, BC_BATCH_LIMIT)
    return None


@lru_cache(maxsize=256)
def inner_target(batch: BatchEndpoint, url: str) -> tuple[str, dict[str, list[str]]]:
    """Path and query of an inner url: relative to the batch's base (leading slash or not) or absolute.
    Cached: a batch repeats one url; callers only read the query."""
    split = urlsplit(url)
    if split.scheme or split.netloc:
        path = split.path
    else:
        path = f"{batch.prefix}/{split.path.lstrip('/')}"
    return unquote(path), parse_qs(split.query, keep_blank_values=True)
