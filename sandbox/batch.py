"""JSON batching (`POST {base}/$batch`): the envelope of inner requests, and each inner request handled
like a standalone one, its answer (or error) becoming one item of the batch's `responses`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .faults import Fault, status_fault
from .jsonio import dumpb
from .odata import BATCH_JSON, INNER_JSON_ODATA, Call, ODataError, error_body
from .routing import BatchEndpoint, Route, inner_target, route

if TYPE_CHECKING:
    from .server import Handler

log = logging.getLogger(__name__)

# Handles one request to a payments route: (status, payload, extra headers), or raises ODataError.
Process = Callable[[Call, Route, dict[str, list[str]], bytes], tuple[int, Any, dict[str, str]]]


@dataclass
class BatchItem:
    """One inner request of a batch, as the client sent it (headers still without the outer token)."""

    id: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    parsed: Any = None  # the body as the outer JSON parse left it (None: no body)


class _Headers(dict[str, str]):
    """Case-insensitive header lookup for inner requests (an email Message costs far more per item)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())


@dataclass
class _InnerCall:
    """What request handling reads of a request (`command`, `headers`), for an inner request of a batch.
    `parsed` is its body, already parsed with the outer request: parsing it again would change nothing."""

    command: str
    headers: _Headers
    parsed: Any = None


def parse_items(batch: BatchEndpoint, data: Any) -> list[BatchItem]:
    """The inner requests of a batch body; a 400 for the whole batch if it is malformed or too big."""

    def bad(message: str) -> ODataError:
        return ODataError(400, "BadRequest_InvalidRequestBody", message)

    if not isinstance(data, dict) or not isinstance(data.get("requests"), list):
        raise bad("The batch request body must be a JSON object with a 'requests' array.")
    requests = data["requests"]
    if not requests:
        raise bad("The batch request must contain at least one request.")
    if len(requests) > batch.limit:
        raise bad(
            f"The batch request contains {len(requests)} requests, more than the limit of "
            f"{batch.limit} requests per batch."
        )
    items: list[BatchItem] = []
    seen: set[str] = set()
    for index, raw in enumerate(requests):
        if not isinstance(raw, dict):
            raise bad(f"Request {index} of the batch is not a JSON object.")
        rid = raw.get("id")
        if not isinstance(rid, str) or not rid:
            raise bad(f"Request {index} of the batch has no 'id' (a non-empty string).")
        if rid in seen:
            raise bad(f"The batch request contains the id '{rid}' more than once.")
        seen.add(rid)
        method, url, headers = raw.get("method"), raw.get("url"), raw.get("headers", {})
        if not isinstance(method, str) or not method:
            raise bad(f"Request '{rid}' of the batch has no 'method'.")
        if not isinstance(url, str) or not url:
            raise bad(f"Request '{rid}' of the batch has no 'url'.")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise bad(f"The 'headers' of request '{rid}' must be an object of strings.")
        inner_body = dumpb(raw["body"]) if "body" in raw else b""
        items.append(BatchItem(rid, method.upper(), url, dict(headers), inner_body, raw.get("body")))
    return items


def run_inner(
    h: Handler, batch: BatchEndpoint, item: BatchItem, outer_auth: str, fault: Fault | None, process: Process
) -> dict[str, Any]:
    """One inner request, handled by `process` like a standalone request to its route, with the outer
    token; an inner `fault` (already taken from the queue) answers instead."""
    headers = _Headers((name.lower(), value) for name, value in item.headers.items())
    headers["authorization"] = outer_auth
    call = _InnerCall(item.method, headers, item.parsed)
    try:
        if fault is not None:
            raise status_fault(fault)
        path, query = inner_target(batch, item.url)
        target = route(path)
        if target is None or target.graph != batch.graph:
            raise ODataError(404, "BadRequest_NotFound", f"No resource found at '{path}'.")
        allowed = ("GET",) if target.entity is not None else ("GET", "POST")
        if item.method not in allowed:
            raise ODataError(
                405,
                "BadRequest_MethodNotAllowed",
                f"'{item.method}' is not allowed on this resource.",
                {"Allow": ", ".join(allowed)},
            )
        status, payload, extra = process(call, target, query, item.body)
    except ODataError as err:
        client_request_id = headers.get("client-request-id") or h.headers.get("client-request-id")
        return {
            "id": item.id,
            "status": err.status,
            "headers": {"Content-Type": BATCH_JSON, **err.headers},
            "body": error_body(err.code, err.message, batch.graph, client_request_id),
        }
    except Exception:  # like a standalone request: a 500 for this item, the batch still answers
        log.debug("sandbox inner request failed", exc_info=True)
        return {
            "id": item.id,
            "status": 500,
            "headers": {"Content-Type": BATCH_JSON},
            "body": {"error": {"code": "Internal_ServerError", "message": "An unexpected error occurred."}},
        }
    return {
        "id": item.id,
        "status": status,
        "headers": {"Content-Type": INNER_JSON_ODATA, **extra},
        "body": payload,
    }
