"""Standard Webhooks 1.0 signatures (standard-webhooks/standard-webhooks, spec/standard-webhooks.md).

Written here rather than taken from PyPI `standardwebhooks` (which the tests use as the independent
signer): its `verify` has a fixed five-minute tolerance, needs the body as text, and lets malformed
headers escape as ValueError or binascii.Error instead of its own error. This checks the same
construction, HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}", on the body's exact bytes,
with a configurable tolerance, constant-time comparison and several secrets per sender (rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import CallerRefused

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
HOW = (
    "sign '{webhook-id}.{webhook-timestamp}.{body}' with HMAC-SHA256 and the sender's secret and send "
    "webhook-signature: v1,<base64 signature>"
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One signed delivery: a sender's retry keeps the id and signs a new timestamp."""

    id: str
    timestamp: int


def verify(
    secrets: Sequence[bytes], headers: Mapping[str, str], body: bytes, *, tolerance: int, now: float
) -> Delivery:
    """The delivery `headers` (lower-case names) sign for `body`, or CallerRefused (401) saying why."""
    missing = [name for name in HEADERS if not headers.get(name)]
    if missing:
        raise CallerRefused(
            401,
            "signature-missing",
            "The webhook is not signed",
            f"missing {', '.join(missing)}: this route takes Standard Webhooks deliveries only; {HOW}",
            error=None if len(missing) == len(HEADERS) else "invalid_request",
        )
    msg_id, stamp, signatures = (headers[name].strip() for name in HEADERS)
    if not 1 <= len(msg_id) <= 255 or not all(" " < ch <= "~" for ch in msg_id):
        raise CallerRefused(
            401,
            "signature-invalid",
            "Invalid webhook-id",
            "webhook-id must be 1 to 255 printable ASCII characters",
        )
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise CallerRefused(
            401,
            "signature-invalid",
            "Invalid webhook-timestamp",
            "webhook-timestamp must be the time of sending in whole Unix seconds",
        )
    timestamp = int(stamp)
    drift = int(now) - timestamp
    if abs(drift) > tolerance:
        direction = "old" if drift > 0 else "in the future"
        raise CallerRefused(
            401,
            "signature-expired",
            "The webhook's timestamp is outside the tolerance",
            f"webhook-timestamp is {abs(drift)} s {direction}; at most {tolerance} s is accepted: sign each "
            "delivery, retries included, when it is sent, and keep the sender's clock in time",
        )
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = [hmac.new(secret, signed, hashlib.sha256).digest() for secret in secrets]
    for part in signatures.split():
        version, _, value = part.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Every secret is compared, in constant time each, so timing says nothing about which matched.
        matched = [hmac.compare_digest(mac, given) for mac in expected]
        if any(matched):
            return Delivery(msg_id, timestamp)
    raise CallerRefused(
        401,
        "signature-invalid",
        "The webhook signature does not match",
        f"no v1 signature matches this body with the sender's secrets: {HOW}; the body must be sent "
        "exactly as signed",
    )
