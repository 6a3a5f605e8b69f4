"""Calling the webhook as the Python worker does: a `func.HttpRequest` into the registered function."""

from __future__ import annotations

import json
from decimal import Decimal

import azure.functions as func

from sandbox import SANDBOX_COMPANY_ID, SANDBOX_JOURNAL_ID

from .host import FUNCTIONS


def call(
    body,
    *,
    content_type="application/json",
    company=SANDBOX_COMPANY_ID,
    journal=SANDBOX_JOURNAL_ID,
    headers=None,
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
    resp = FUNCTIONS["customer_payments"].get_user_function()(req)
    text = resp.get_body().decode()
    return resp, (json.loads(text, parse_float=Decimal) if text else None)


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
