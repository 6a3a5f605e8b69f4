"""JSON `$batch`: many customerPayments in one request, each inner answer mapped back to its payment.

The envelope is `{"requests": [{"id", "method", "url", "headers", "body"}]}`; the answer lists one
response per id, in any order (Graph says so; the sandbox reverses them to keep us honest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from .. import codec
from ..errors import AmbiguousOutcome, TargetError
from .responses import Created
from .retry import Retryable

# (item index, status, code, message, Retry-After header, client-request-id) -> what the answer means
Judge = Callable[[int, int, str, str, str | None, str], Retryable | TargetError]


def envelope(item_url: str, payloads: list[dict[str, Any]], indexes: list[int]) -> bytes:
    """The `$batch` body posting `payloads[i]` for each i in `indexes`, with i as the inner id."""
    return codec.dumpb(
        {
            "requests": [
                {
                    "id": str(i),
                    "method": "POST",
                    "url": item_url,
                    "headers": {"Content-Type": "application/json"},
                    "body": payloads[i],
                }
                for i in indexes
            ]
        }
    )


def _status(answer: dict[str, Any]) -> int:
    status = answer.get("status")
    if type(status) is int:
        return status
    return int(status) if isinstance(status, str) and status.isdigit() else 0  # unreadable: ambiguous


def read_answers(
    response: requests.Response,
    request_id: str,
    pending: list[int],
    results: dict[int, Created | TargetError | Retryable],
    judge: Judge,
) -> list[int]:
    """Record each pending item's result from the batch answer; return the items to send again
    (those whose inner answer was `Retryable`: the target certainly did not act on them)."""
    try:
        answers = codec.loads(response.content, unique_keys=False).get("responses") or []
    except (ValueError, AttributeError):
        answers = []
    by_id = {str(a.get("id")): a for a in answers if isinstance(a, dict)}
    again: list[int] = []
    for i in pending:
        answer = by_id.get(str(i))
        if answer is None:
            results[i] = AmbiguousOutcome(
                "the batch answer has no response for this payment; it may exist at the target",
                client_request_id=request_id,
            )
            continue
        status = _status(answer)
        body = answer.get("body")
        if 200 <= status < 300:
            results[i] = Created(body if isinstance(body, dict) else {}, request_id, 1)
            continue
        error = body.get("error") if isinstance(body, dict) else None
        code = str((error or {}).get("code") or f"HTTP{status}")
        message = str((error or {}).get("message") or "")[:1000]
        headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
        outcome = judge(i, status, code, message, headers.get("retry-after"), request_id)
        if isinstance(outcome, Retryable):
            again.append(i)
            outcome.unavailable.client_request_id = request_id
        else:
            outcome.client_request_id = request_id
        results[i] = outcome
    return again
