"""The webhook as a caller sees it: the registered function, called the way the Functions host calls it,
against the sandbox on loopback with the real ManagedIdentityCredential."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import azure.functions as func
import pytest

from sandbox import SANDBOX_COMPANY_ID, SANDBOX_CUSTOMERS, SANDBOX_JOURNAL_ID
from tests.support.host import FUNCTIONS
from tests.support.webhook import call, pay, posts

ROUTE = "companies/{companyId}/customerPaymentJournals/{journalId}/customerPayments"
PROBLEM = "urn:payments-relay:problem:"


def test_http_function_is_registered_with_route_auth_level_and_method():
    trigger = FUNCTIONS["customer_payments"].get_bindings_dict()["bindings"][0]
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == ROUTE
    # Anonymous to the host: the relay admits callers itself (Entra ID or signatures); no function keys.
    assert trigger["authLevel"] == func.AuthLevel.ANONYMOUS
    assert [str(m.value if hasattr(m, "value") else m) for m in trigger["methods"]] == ["POST"]


def test_one_payment_is_created_and_the_exact_request_reaches_graph(azure_env, sandbox):
    body = (
        b'{"customerNumber": "10000", "amount": -999999999999999.99, '
        b'"postingDate": "2026-11-20", "documentNumber": "PAY-1"}'
    )
    resp, created = call(body)
    assert resp.status_code == 201
    assert resp.mimetype == "application/json"
    # The body is the target's object, amount digits untouched.
    assert '"amount":-999999999999999.99' in resp.get_body().decode()
    stored = sandbox.payments()
    assert len(stored) == 1 and created["id"] == stored[0]["id"]
    assert created["lineNumber"] == 10000 and created["customerNumber"] == "10000"

    [request] = posts(sandbox)
    assert request.path == (
        f"/beta/financials/companies/{SANDBOX_COMPANY_ID}/customerPaymentJournals/{SANDBOX_JOURNAL_ID}/customerPayments"
    )
    assert not request.path.endswith("/$ref")
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"].startswith("Bearer sandbox-token-")
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("payments-relay/")
    assert str(uuid.UUID(headers["client-request-id"])) == headers["client-request-id"]
    assert resp.headers["client-request-id"] == headers["client-request-id"]
    assert request.body == (
        b'{"customerNumber":"10000","postingDate":"2026-11-20","documentNumber":"PAY-1",'
        b'"amount":-999999999999999.99}'
    )


def test_business_central_target_uses_its_own_path_form(azure_env, sandbox):
    azure_env("businesscentral")
    resp, created = call(pay("20000", amount="-0.10", customerId=SANDBOX_CUSTOMERS["20000"].upper()))
    assert resp.status_code == 201, created
    [request] = posts(sandbox)
    assert request.path == (
        f"/v2.0/sandbox-tenant/sandbox/api/v2.0/companies({SANDBOX_COMPANY_ID})"
        f"/customerPaymentJournals({SANDBOX_JOURNAL_ID})/customerPayments"
    )
    sent = json.loads(request.body)
    assert sent["customerId"] == SANDBOX_CUSTOMERS["20000"]  # normalised to lower case
    assert b'"amount":-0.10' in request.body


def test_read_only_properties_are_not_sent_and_the_answer_says_so(azure_env, sandbox):
    resp, _ = call(
        pay(
            id="abc",
            lastModifiedDateTime="2020-01-01T00:00:00Z",
            **{"@odata.type": "#microsoft.graph.customerPayment"},
        )
    )
    assert resp.status_code == 201
    assert resp.headers["Payments-Ignored-Properties"] == "id, lastModifiedDateTime"
    assert json.loads(posts(sandbox)[0].body) == {"customerNumber": "10000", "amount": -12.5}


def test_an_invoice_payment_without_a_customer_is_created_and_journal_display_name_is_not_sent(
    azure_env, sandbox
):
    azure_env("businesscentral")
    resp, created = call(
        {"appliesToInvoiceNumber": "103001", "amount": "-250.00", "journalDisplayName": "OTHER"}
    )
    assert resp.status_code == 201
    assert resp.headers["Payments-Ignored-Properties"] == "journalDisplayName"
    assert posts(sandbox)[0].body == b'{"amount":-250.00,"appliesToInvoiceNumber":"103001"}'
    # Business Central took the customer from the invoice, and the journal's own name stands.
    assert (created["customerNumber"], created["journalDisplayName"]) == ("10000", "GENERAL")


def test_batch_all_created(azure_env, sandbox):
    resp, body = call([pay(amount="-1.01"), pay("20000", "-2.02"), pay("30000", "-3.03")])
    assert resp.status_code == 201
    assert body["summary"] == {"total": 3, "created": 3}
    assert [r["status"] for r in body["results"]] == [201, 201, 201]
    # Posted concurrently: every payment gets its own line, in whatever order they arrived.
    assert sorted(r["payment"]["lineNumber"] for r in body["results"]) == [10000, 20000, 30000]
    assert [r["payment"]["amount"] for r in body["results"]] == [
        Decimal("-1.01"),
        Decimal("-2.02"),
        Decimal("-3.03"),
    ]
    assert sorted(str(p["amount"]) for p in sandbox.payments()) == ["-1.01", "-2.02", "-3.03"]


@pytest.mark.parametrize(
    ("wrap", "prefix"), [(lambda items: items, ""), (lambda items: {"value": items}, "/value")]
)
def test_an_invalid_item_rejects_the_whole_batch_before_anything_is_posted(azure_env, sandbox, wrap, prefix):
    resp, problem = call(wrap([pay(), pay(amount="-1.005"), {"customerNumber": "1", "ammount": "3"}, pay()]))
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    assert problem["type"] == PROBLEM + "validation-failed"
    assert problem["detail"] == "2 of 4 payments are invalid; nothing was posted"
    assert problem["errors"] == [
        {
            "pointer": f"{prefix}/1/amount",
            "detail": "has 3 decimal places; at most 2 are allowed (it is never rounded: send it exactly)",
        },
        {"pointer": f"{prefix}/2/amount", "detail": "is required"},
        {
            "pointer": f"{prefix}/2/ammount",
            "detail": "is not a customerPayment property; did you mean 'amount'?",
        },
    ]
    assert sandbox.requests == []


def test_batch_with_mixed_outcomes_answers_207_in_input_order(azure_env, sandbox):
    resp, body = call([pay(amount="-5"), pay("99999", "-6"), pay(amount="-7")])
    assert resp.status_code == 207
    assert body["summary"] == {"total": 3, "created": 2, "rejected": 1}
    assert [(r["index"], r["status"], r["outcome"]) for r in body["results"]] == [
        (0, 201, "created"),
        (1, 422, "rejected"),
        (2, 201, "created"),
    ]
    assert body["results"][1]["problem"]["targetCode"] == "Application_DialogException"
    assert sorted(str(p["amount"]) for p in sandbox.payments()) == ["-5", "-7"]


def test_empty_batch(azure_env, sandbox):
    resp, problem = call([])
    assert resp.status_code == 422
    assert problem["errors"] == [
        {"pointer": "", "detail": "must be a non-empty array of customerPayment objects"}
    ]


def test_single_invalid_payment_lists_every_problem(azure_env, sandbox):
    resp, problem = call({"amount": 0, "postingDate": "2026-13-01"})
    assert resp.status_code == 422
    assert problem["errors"] == [
        {
            "pointer": "",
            "detail": "customerId or customerNumber is required to identify the customer, unless the invoice it pays is given (appliesToInvoiceId or appliesToInvoiceNumber): Business Central then takes the customer from the invoice",
        },
        {"pointer": "/postingDate", "detail": "'2026-13-01' is not a calendar date"},
        {"pointer": "/amount", "detail": "must not be zero"},
    ]
    assert sandbox.requests == []


@pytest.mark.parametrize(
    ("body", "content_type", "status", "slug", "detail"),
    [
        (
            b'{"amount": 1,',
            "application/json",
            400,
            "malformed-body",
            "Expecting property name enclosed in double quotes",
        ),
        (
            b'{"amount": 1, "amount": 2}',
            "application/json",
            400,
            "malformed-body",
            "duplicate property 'amount'",
        ),
        (
            b'{"description": "caf\xe9", "amount": 1}',
            "application/json",
            400,
            "malformed-body",
            "not valid UTF-8",
        ),
        (
            b'{"amount": 1}',
            "text/plain",
            415,
            "unsupported-media-type",
            "send Content-Type: application/json",
        ),
        (b'{"amount": 1}', None, 415, "unsupported-media-type", "got 'none'"),
        (
            b'{"amount": 1}',
            "application/json; charset=iso-8859-1",
            415,
            "unsupported-media-type",
            "send UTF-8",
        ),
    ],
)
def test_unreadable_bodies(azure_env, sandbox, body, content_type, status, slug, detail):
    resp, problem = call(body, content_type=content_type)
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    assert problem["type"] == PROBLEM + slug and problem["status"] == status
    assert detail in problem["detail"]
    assert "Traceback" not in resp.get_body().decode()
    assert sandbox.requests == []


def test_body_over_the_limit_is_413(azure_env, sandbox):
    azure_env(PAYMENTS_MAX_BODY_BYTES="2048")
    resp, problem = call([pay() for _ in range(60)])
    assert resp.status_code == 413
    assert problem["type"] == PROBLEM + "body-too-large"
    assert "at most 2048" in problem["detail"]
    assert sandbox.requests == []


def test_route_ids_must_be_guids(azure_env, sandbox):
    resp, problem = call(pay(), company="contoso")
    assert resp.status_code == 400
    assert problem["errors"] == [{"parameter": "companyId", "detail": "'contoso' is not a GUID"}]


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda: call(pay("99999")), 422, "Application_DialogException"),
        (lambda: call(pay(description="x"), company=str(uuid.uuid4())), 404, "Internal_CompanyNotFound"),
        (
            lambda: call(pay(lineNumber=10000)) and call(pay(lineNumber=10000)),
            409,
            "Internal_EntityWithSameKeyExists",
        ),
    ],
)
def test_target_rejections_carry_the_target_code(azure_env, sandbox, make, status, code):
    resp, problem = make()
    assert resp.status_code == status
    assert problem["type"] == PROBLEM + "target-rejected"
    assert problem["targetCode"] == code
    assert problem["detail"].startswith(code + ": ")


def test_throttling_is_retried_and_the_payment_created_once(azure_env, sandbox):
    sandbox.inject("429", times=2, retry_after="0")
    resp, _ = call(pay())
    assert resp.status_code == 201
    assert len(posts(sandbox)) == 3
    assert len(sandbox.payments()) == 1
    ids = {r.headers.get("client-request-id") for r in posts(sandbox)}
    assert len(ids) == 1  # one logical request, one correlation id across its attempts


def test_target_unavailable_after_retries_is_503_with_retry_after(azure_env, sandbox):
    azure_env(PAYMENTS_MAX_ATTEMPTS="3")
    sandbox.inject("503", times=3, retry_after="0")
    resp, problem = call(pay())
    assert resp.status_code == 503
    assert problem["type"] == PROBLEM + "target-unavailable"
    assert len(posts(sandbox)) == 3 and sandbox.payments() == []


def test_a_retry_after_beyond_the_budget_is_passed_on_to_the_caller(azure_env, sandbox):
    azure_env(PAYMENTS_RETRY_MAX_SECONDS="5")
    sandbox.inject("503", times=3, retry_after="7")
    resp, problem = call(pay())
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "7"
    assert problem["type"] == PROBLEM + "target-unavailable"
    assert len(posts(sandbox)) == 1 and sandbox.payments() == []


def test_unavailable_target_stops_a_batch_and_says_which_were_not_attempted(azure_env, sandbox):
    azure_env(PAYMENTS_MAX_ATTEMPTS="2", PAYMENTS_MAX_CONCURRENCY="1")
    sandbox.inject("503", times=2, retry_after="0")
    resp, body = call([pay(), pay("20000")])
    assert resp.status_code == 503
    assert [r["problem"]["attempted"] for r in body["results"]] == [True, False]
    assert len(posts(sandbox)) == 2 and sandbox.payments() == []


def test_dropped_connection_after_commit_is_ambiguous_and_not_reposted(azure_env, sandbox):
    sandbox.inject("drop-after")
    resp, problem = call(pay())
    assert resp.status_code == 502
    assert problem["type"] == PROBLEM + "outcome-unknown"
    assert problem["mayExist"] is True
    assert len(posts(sandbox)) == 1
    assert len(sandbox.payments()) == 1


def test_read_timeout_is_ambiguous(azure_env, sandbox):
    azure_env(PAYMENTS_READ_TIMEOUT_SECONDS="0.5")
    sandbox.inject("timeout")
    resp, problem = call(pay())
    assert resp.status_code == 502
    assert "timed out" in problem["detail"]
    assert len(posts(sandbox)) == 1


def test_misconfiguration_is_a_clear_problem_not_a_traceback(azure_env, sandbox, monkeypatch):
    azure_env(PAYMENTS_TARGET="bc")
    resp, problem = call(pay())
    assert resp.status_code == 500
    assert problem["type"] == PROBLEM + "relay-misconfigured"
    assert "PAYMENTS_TARGET: Input should be 'graph' or 'businesscentral' (got 'bc')" in problem["detail"]


def test_outcome_is_logged_with_the_correlation_id_and_never_the_token_or_payload(azure_env, sandbox, caplog):
    caplog.set_level("DEBUG")
    resp, created = call(pay(amount="-777.77", description="private remark"))
    assert resp.status_code == 201
    request_id = resp.headers["client-request-id"]
    assert any(request_id in r.getMessage() and created["id"] in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "sandbox-token-" not in text and "777.77" not in text and "private remark" not in text


def test_settings_are_checked_at_start_up_with_a_clear_log_line(monkeypatch, caplog):
    from payments import runtime

    monkeypatch.setenv("PAYMENTS_TARGET", "businesscentral")
    monkeypatch.delenv("PAYMENTS_API_BASE_URL", raising=False)
    assert runtime.check_settings() is False
    assert "PAYMENTS_API_BASE_URL is required when PAYMENTS_TARGET=businesscentral" in caplog.text


def test_amounts_written_as_money_received_are_sent_as_credits_and_the_answer_says_so(azure_env, sandbox):
    """PAYMENTS_AMOUNT_SIGN=positive: callers send money received; Business Central gets the credit its
    journal posts (Gen. Jnl.-Check Line: a customer payment's amount must be negative)."""
    azure_env("businesscentral", PAYMENTS_AMOUNT_SIGN="positive")
    resp, created = call(pay(amount="12.50"))
    assert resp.status_code == 201
    assert resp.headers["Payments-Amounts-Negated"] == "true"
    assert posts(sandbox)[0].body == b'{"customerNumber":"10000","amount":-12.50}'
    assert created["amount"] == Decimal("-12.50")
    resp, problem = call(pay(amount="-12.50"))
    assert resp.status_code == 422 and resp.headers["Payments-Amounts-Negated"] == "true"
    assert problem["errors"] == [
        {
            "pointer": "/amount",
            "detail": "is negative, but PAYMENTS_AMOUNT_SIGN=positive: payments are written as money received "
            "(the relay sends them as credits); send 12.50",
        }
    ]
    assert len(posts(sandbox)) == 1


def test_a_positive_amount_is_refused_by_default_with_what_to_send(azure_env, sandbox):
    resp, problem = call(pay(amount="12.50"))
    assert resp.status_code == 422 and "Payments-Amounts-Negated" not in resp.headers
    [error] = problem["errors"]
    assert error["pointer"] == "/amount"
    assert error["detail"].startswith(
        "is positive, but Business Central records a customer payment as a credit"
    )
    assert "send -12.50" in error["detail"]
    assert posts(sandbox) == []
