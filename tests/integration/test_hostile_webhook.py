"""The webhook under hostile and careless input (issue 12): each case gets exactly its answer, as a
problem document, and nothing is posted that should not be. Time and memory per case are measured by
`bench/hostile.py`, not here."""

from __future__ import annotations

import pytest

from tests.support.hostile import WEBHOOK_CASES, WebhookCase
from tests.support.webhook import answer_through, call, posts, unreachable_storage


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

    from payments.ledger import Ledger, TableLedgerStore
    from payments.posting import Pipeline
    from tests.support.relay import make_client

    azure_env()
    unreachable = TableClient.from_connection_string(
        unreachable_storage(), "paymentsledger", retry_total=0, connection_timeout=2
    )
    answer, body, raw = answer_through(Pipeline(make_client(), Ledger(TableLedgerStore(unreachable))))
    assert answer.status == 503 and answer.headers["Retry-After"] == "30"
    assert body["detail"].startswith("not posted: the relay's ledger (its storage) is unavailable")
    assert "Error" not in raw and "127.0.0.1" not in raw
    assert posts(sandbox) == []
