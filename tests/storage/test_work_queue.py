"""Queue-levelled posting: the webhook and the file drop accept and queue; the queue function posts.

Everything runs for real: Azurite's queue, table and blobs, the sandbox over HTTP, and the registered
functions called as the Python worker calls them (devtools.queue_host plays the host's listener)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import azure.functions as func
import pytest

from payments.ledger import TableLedgerStore
from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.filedrop import configure_storage
from tests.support.host import FUNCTIONS
from tests.support.webhook import call, pay, posts
from tests.support.work import queue_host, queue_settings


@pytest.fixture
def queued(azure_env, azurite, sandbox):
    return configure_storage(azure_env, azurite, **queue_settings())


def status_of(batch_url: str):
    batch_id = batch_url.rsplit("/", 1)[-1]
    req = func.HttpRequest(
        method="GET", url=f"http://127.0.0.1{batch_url}", headers={}, body=b"", route_params={"batchId": batch_id}
    )
    resp = FUNCTIONS["batch_status"].get_user_function()(req)
    return resp, json.loads(resp.get_body().decode(), parse_float=Decimal)


def entries(env) -> list:
    return list(TableLedgerStore(env.table).scan())


def test_a_small_call_is_answered_201_once_the_queue_function_posted_it(queued, sandbox):
    with queue_host(queued):
        resp, body = call(pay(documentNumber="Q-1"))
    assert resp.status_code == 201, body
    [stored] = sandbox.payments()
    assert body["id"] == stored["id"] and body["documentNumber"] == "Q-1"
    assert resp.headers["client-request-id"] == posts(sandbox)[0].headers["client-request-id"]
    [entry] = entries(queued)
    assert entry.state == "posted" and entry.target_id == stored["id"]
