"""What the target's answers mean for a payment: a non-2xx status, its OData error and Retry-After
become an error type that keeps the split that matters for money (certainly not created, or may exist).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import requests

from .. import codec
from ..errors import (
    AmbiguousOutcome,
    NotAuthorized,
    PermanentRejection,
    TargetError,
    Throttled,
    Transient,
)
from .retry import Retryable

log = logging.getLogger("payments.target")

DUPLICATE_KEY = "Internal_EntityWithSameKeyExists"  # NavCSideDuplicateKeyException (Business Central docs)


class Created(NamedTuple):
    """The target's answer to a successful create: its object (amounts exact) and our correlation id.
    (A tuple: a `$batch` answer makes a hundred of these, and a frozen dataclass costs several times more.)"""

    body: dict[str, Any]
    client_request_id: str
    attempts: int


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header given as delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return max(0.0, (when - current).total_seconds())


def odata_error(response: requests.Response) -> tuple[str, str]:
    """The OData error code and message of an answer (`{"error": {"code", "message"}}`), or stand-ins."""
    try:
        err = codec.loads(response.content, unique_keys=False).get("error") or {}
        return str(err.get("code") or f"HTTP{response.status_code}"), str(err.get("message") or "")[:1000]
    except (ValueError, AttributeError):
        return f"HTTP{response.status_code}", (response.text or response.reason or "")[:300]


def classify(
    status: int,
    code: str,
    message: str,
    retry_after: float | None,
    request_id: str,
    *,
    idempotent: bool,
    auto_numbered: bool = False,
) -> Retryable | TargetError:
    """What a non-2xx answer means; shared by single requests and `$batch` items. Retrying is safe only
        when the target certainly did not act: a 429, a 503, a 502/504 that carries Retry-After (or any
        5xx for a read), and a duplicate key on a line whose number the target assigns (`auto_numbered`:
    it read the journal's last line while another insert was writing after it; nothing was created).
    Anything else after the request was sent is final or ambiguous."""
    hint = int(retry_after + 0.999) if retry_after is not None else 30
    log.warning("target answered %d %s client-request-id=%s", status, code, request_id)
    if status == 429:
        return Retryable(
            Throttled(f"throttled by the target ({code})", retry_after=hint, status=status), retry_after
        )
    if (
        status == 503
        or (status in (502, 504) and (retry_after is not None or idempotent))
        or (idempotent and status >= 500)
    ):
        return Retryable(
            Transient(f"target unavailable: {status} {code}", retry_after=hint, status=status), retry_after
        )
    if auto_numbered and code == DUPLICATE_KEY:
        return Retryable(
            Transient(
                "the target gave this payment's line number to another insert at the same moment "
                f"({status} {code}); nothing was created",
                retry_after=hint,
                status=status,
            ),
            retry_after,
        )
    if status in (401, 403):
        return NotAuthorized(
            f"the target refused the relay's identity: {code}: {message}",
            status=status,
            code=code,
            client_request_id=request_id,
        )
    if 400 <= status < 500 and status != 408:
        return PermanentRejection(message or code, status=status, code=code, client_request_id=request_id)
    return AmbiguousOutcome(
        f"the target answered {status} {code} after receiving the request; "
        "the payment may exist at the target",
        status=status,
        client_request_id=request_id,
    )
