"""The webhook under hostile and careless input (issue 12): each case gets exactly its answer, as a
problem document, and nothing is posted that should not be. Time and memory per case are measured by
`bench/hostile.py`, not here."""

from __future__ import annotations

import pytest

from tests.support.hostile import MANY, MANY_ITEM_CASES, WEBHOOK_CASES, WebhookCase
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


@pytest.mark.parametrize("case", MANY_ITEM_CASES, ids=[c.name for c in MANY_ITEM_CASES])
def test_a_body_of_100000_invalid_items_gets_the_first_100_problems_and_the_count_of_the_rest(
    azure_env, sandbox, case: WebhookCase
) -> None:
    """Before: every problem was listed (a 29 MB answer for 100,000 empty objects, ~340 MB and 4 s).
    Now the answer lists the first 100, in body order, says how many were found and how many items
    were not checked, and stays small."""
    azure_env()
    resp, body = call(case.body)
    assert (resp.status_code, body["type"]) == (422, "urn:payments-relay:problem:validation-failed")
    assert len(resp.get_body()) < 20_000
    assert len(body["errors"]) == 100
    assert body["errors"][0]["pointer"].startswith("/0")
    assert body["errorCount"] >= 100
    assert body["errorsNotShown"] if body["errorCount"] > 100 else "errorsNotShown" not in body
    checked = MANY - body["unchecked"]
    assert body["detail"].startswith(f"{checked} of the first {checked} of {MANY} payments are invalid")
    assert case.says in body["detail"]
    assert posts(sandbox) == []


def test_one_invalid_item_among_valid_ones_is_named_and_the_batch_counted_whole(azure_env, sandbox) -> None:
    azure_env()
    items = [{"customerNumber": "10000", "amount": -1}] * 150 + [{"customerNumber": "10000", "amount": 1}]
    resp, body = call(items)
    assert resp.status_code == 422
    assert body["detail"] == "1 of 151 payments are invalid; nothing was posted"
    assert [e["pointer"] for e in body["errors"]] == ["/150/amount"]
    assert (body["errorCount"], "unchecked" in body, "errorsNotShown" in body) == (1, False, False)
    assert posts(sandbox) == []
