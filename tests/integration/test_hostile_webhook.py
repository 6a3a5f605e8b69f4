"""The webhook under hostile and careless input (issue 12): each case gets exactly its answer, as a
problem document, and nothing is posted that should not be. Time and memory per case are measured by
`bench/hostile.py`, not here."""

from __future__ import annotations

import pytest

from sandbox import SANDBOX_COMPANY_ID as C
from sandbox import SANDBOX_JOURNAL_ID as J
from tests.support.hostile import WEBHOOK_CASES, WebhookCase
from tests.support.webhook import call, posts


@pytest.mark.parametrize("case", WEBHOOK_CASES, ids=[f"{c.category}: {c.name}" for c in WEBHOOK_CASES])
def test_hostile_webhook_input_gets_its_exact_answer(azure_env, sandbox, case: WebhookCase) -> None:
    azure_env()
    resp, body = call(
        case.body,
        content_type=case.content_type,
        company=case.company,
        journal=case.journal,
        headers=case.headers,
    )
    assert resp.status_code == case.status, body
    if case.problem is None:
        assert body["amount"] is not None
    else:
        assert resp.mimetype == "application/problem+json"
        assert body["type"] == f"urn:payments-relay:problem:{case.problem}"
        assert body["status"] == case.status
        said = [body["detail"], *(e["detail"] for e in body.get("errors", []))]
        assert any(case.says in text for text in said), said
        assert "Traceback" not in resp.get_body().decode()
    assert len(posts(sandbox)) == case.posted


def test_a_ledger_that_cannot_be_reached_is_a_503_that_says_what_to_do_not_the_storage_error(
    azure_env, sandbox
) -> None:
    """The storage error's own text (exception class, URL, request id) belongs in the logs; a caller
    learns that nothing was posted and to send the payment again later."""
    from azure.data.tables import TableClient

    from devtools.azurite import Azurite
    from payments import codec, webhook
    from payments.ledger import Ledger, TableLedgerStore
    from payments.posting import Pipeline
    from tests.support.relay import make_client

    azure_env()
    nobody_listens = Azurite(blob_port=9, queue_port=9, table_port=9).connection_string  # port 9: refused
    unreachable = TableClient.from_connection_string(
        nobody_listens, "paymentsledger", retry_total=0, connection_timeout=2
    )
    pipeline = Pipeline(make_client(), Ledger(TableLedgerStore(unreachable)))
    answer = webhook.handle_post(
        body=b'{"customerNumber": "10000", "amount": -1}',
        headers={"Content-Type": "application/json"},
        company_id=C,
        journal_id=J,
        pipeline=lambda: pipeline,
    )
    body = codec.loads(answer.content())
    assert answer.status == 503 and answer.headers["Retry-After"] == "30"
    assert body["detail"].startswith("not posted: the relay's ledger (its storage) is unavailable")
    assert "Error" not in answer.content().decode() and "127.0.0.1" not in answer.content().decode()
    assert posts(sandbox) == []
