"""Calling the webhook as the Python worker does: a `func.HttpRequest` into the registered function."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import azure.functions as func

from sandbox import SANDBOX_COMPANY_ID, SANDBOX_JOURNAL_ID

from .contract import invoke

PAYMENTS_PATH = "companies/{company}/customerPaymentJournals/{journal}/customerPayments"
# The signed sender "acme" of the caller tests, mid-rotation: both secrets verify.
ACME_SECRET = "whsec_" + base64.b64encode(b"acme-signing-secret-0123456789ab").decode()
ACME_NEW_SECRET = "whsec_" + base64.b64encode(b"acme-rotated-secret-9876543210zy").decode()


def call(
    body,
    *,
    content_type="application/json",
    company=SANDBOX_COMPANY_ID,
    journal=SANDBOX_JOURNAL_ID,
    headers=None,
    traceparent=None,
):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": content_type} if content_type else {}
    hdrs.update(headers or {})
    req = func.HttpRequest(
        method="POST",
        url=f"http://127.0.0.1/api/companies/{company}/customerPaymentJournals/{journal}/customerPayments",
        headers=hdrs,
        body=raw,
        route_params={"companyId": company, "journalId": journal},
    )
    return _answer(invoke("customer_payments", req, traceparent))


def _answer(resp):
    text = resp.get_body().decode()
    return resp, (json.loads(text, parse_float=Decimal) if text else None)


def signed_headers(raw: bytes, secret: str, *, msg_id: str | None = None, timestamp: int | None = None):
    """Standard Webhooks headers for `raw`, signed by the reference implementation (PyPI standardwebhooks)."""
    import time
    import uuid
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time()) if timestamp is None else timestamp
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, UTC), raw.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def call_signed(
    body,
    *,
    sender: str,
    headers: dict[str, str],
    company=SANDBOX_COMPANY_ID,
    journal=SANDBOX_JOURNAL_ID,
):
    """POST to a sender's signed route with the given (signature) headers."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    path = PAYMENTS_PATH.format(company=company, journal=journal)
    req = func.HttpRequest(
        method="POST",
        url=f"http://127.0.0.1/api/webhooks/{sender}/{path}",
        headers={"Content-Type": "application/json", **headers},
        body=raw,
        route_params={"sender": sender, "companyId": company, "journalId": journal},
    )
    return _answer(invoke("signed_customer_payments", req))


def get_status(location: str, headers: dict[str, str] | None = None):
    """GET a batch's status URL (either route) as the worker would."""
    parts = location.strip("/").split("/")  # api/batches/{id} or api/webhooks/{sender}/batches/{id}
    signed = parts[1] == "webhooks"
    params = {"batchId": parts[-1], **({"sender": parts[2]} if signed else {})}
    req = func.HttpRequest(
        method="GET", url=f"http://127.0.0.1{location}", headers=headers or {}, body=b"", route_params=params
    )
    return _answer(invoke("signed_batch_status" if signed else "batch_status", req))


def get_openapi(headers: dict[str, str] | None = None):
    req = func.HttpRequest(
        method="GET",
        url="http://127.0.0.1/api/openapi.json",
        headers=headers or {},
        body=b"",
        route_params={},
    )
    return _answer(invoke("openapi", req))


def pay(number="10000", amount="-12.50", **extra):
    return {"customerNumber": number, "amount": amount, **extra}


def posts(sandbox):
    """The POST requests the target received (a `$batch` counts once)."""
    return [r for r in sandbox.requests if r.method == "POST"]


def unreachable_storage() -> str:
    """Azurite's connection string with every service on port 9, where nothing listens."""
    from devtools.azurite import Azurite

    return Azurite(blob_port=9, queue_port=9, table_port=9).connection_string


def answer_through(pipeline, body: bytes = b'{"customerNumber": "10000", "amount": -1}'):
    """The webhook's answer (status, headers, parsed body, raw bytes) for one call through `pipeline`."""
    from payments import codec, webhook
    from payments.inbound import Gate, MemoryDeliveries

    answer = webhook.handle_post(
        body=body,
        headers={"Content-Type": "application/json"},
        company_id=SANDBOX_COMPANY_ID,
        journal_id=SANDBOX_JOURNAL_ID,
        pipeline=lambda: pipeline,
        gate=lambda: Gate(pipeline.client.settings, MemoryDeliveries()),
    )
    raw = answer.content()
    return answer, codec.loads(raw), raw.decode()
