"""The sandbox inserts a customer payment as Business Central does. Each test names the source it
follows: page 30055 "APIV2 - Customer Payments" (microsoft/ALAppExtensions
Apps/W1/APIV2/app/src/pages/APIV2CustomerPayments.Page.al), its E2E tests (codeunit 139840,
APIV2CustomerPaymentsE2E.Codeunit.al), table 81 "Gen. Journal Line" (GetNewLineNo, SetUpNewLine,
ValidateAmount) and codeunit "Library API - General Journal" (InitializeLine)."""

from __future__ import annotations

import json
from datetime import date

import pytest
import requests

from sandbox import SANDBOX_COMPANY_ID, SANDBOX_CUSTOMERS, SANDBOX_JOURNAL_ID, Sandbox

AUTH = {"Authorization": "Bearer static-test-token", "Content-Type": "application/json"}
EMPTY_GUID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def bc(sandbox: Sandbox):
    """POST a body to the Business Central form of the journal; the answer's status and JSON."""
    url = (
        f"{sandbox.bc_base_url}/companies({SANDBOX_COMPANY_ID})/customerPaymentJournals({SANDBOX_JOURNAL_ID})"
        "/customerPayments"
    )

    def post(body: dict) -> tuple[int, dict]:
        resp = requests.post(url, data=json.dumps(body), headers=AUTH, timeout=5)
        return resp.status_code, resp.json()

    return post


def dialog(answer: tuple[int, dict]) -> str:
    status, body = answer
    assert status == 400 and body["error"]["code"] == "Application_DialogException", answer
    return body["error"]["message"]


def test_a_payment_without_a_customer_is_inserted(bc, sandbox):
    """E2E TestCreateCustomerPaymentWithoutDocNo posts only a lineNumber: the insert succeeds with a
    blank Account No. (the line fails later, when the journal is posted)."""
    status, created = bc({"lineNumber": 10000, "amount": -5})
    assert status == 201
    assert (created["customerNumber"], created["customerId"]) == ("", EMPTY_GUID)


def test_the_customer_comes_from_the_invoice_when_none_is_given(bc, sandbox):
    """Page 30055 appliesToInvoiceNumber / appliesToInvoiceId OnValidate: when Account No. is blank it
    is filled from the invoice's Bill-to (else Sell-to) customer; E2E
    TestCustomerAutofillWhenGivingInvoiceNumber (line 10000 in an empty journal)."""
    status, by_number = bc({"appliesToInvoiceNumber": "103001", "amount": -10})
    assert status == 201
    assert by_number["customerNumber"] == "10000" and by_number["customerId"] == SANDBOX_CUSTOMERS["10000"]
    assert by_number["appliesToInvoiceId"] == "a1000001-0000-4000-8000-000000103001"
    assert by_number["lineNumber"] == 10000
    invoice = sandbox.add_invoice("INV-77", "30000")
    status, by_id = bc({"appliesToInvoiceId": invoice, "amount": -10})
    assert status == 201
    assert (by_id["customerNumber"], by_id["appliesToInvoiceNumber"]) == ("30000", "INV-77")


def test_the_invoice_does_not_overwrite_a_given_customer(bc):
    """E2E TestCustomerAutofillDoesNotOverwrite: the autofill runs only when Account No. is blank."""
    status, created = bc({"customerNumber": "40000", "appliesToInvoiceNumber": "103001", "amount": -1})
    assert status == 201 and created["customerNumber"] == "40000"


def test_invoice_checks_and_their_messages(bc, sandbox):
    """Page 30055 labels AppliesToInvoiceIdDoesNotMatchAnInvoiceErr and AppliesToDocValuesDontMatchErr;
    an unknown invoice number is kept with a blank id (E2E TestModifyCustomerPaymentWithRandomDocNo)."""
    not_an_invoice = dialog(bc({"customerNumber": "10000", "appliesToInvoiceId": SANDBOX_CUSTOMERS["20000"]}))
    assert not_an_invoice == (
        'The "appliesToInvoiceId" should be the ID of an Open, Paid, Corrective, or Canceled Invoice.'
    )
    mismatch = dialog(
        bc(
            {
                "customerNumber": "10000",
                "appliesToInvoiceId": "a1000001-0000-4000-8000-000000103001",
                "appliesToInvoiceNumber": "103002",
            }
        )
    )
    assert mismatch == "The Applies To Invoice values do not match to the same Invoice."
    assert sandbox.payments() == []
    status, created = bc({"customerNumber": "10000", "appliesToInvoiceNumber": "nope-1", "amount": -1})
    assert status == 201
    assert (created["appliesToInvoiceNumber"], created["appliesToInvoiceId"]) == ("NOPE-1", EMPTY_GUID)


def test_journal_display_name_is_not_taken_from_the_body_and_journal_id_must_match(bc, sandbox):
    """OnInsertRecord: the batch is set from the journal id (SetCustomerPaymentsTemplateAndBatch), so a
    journalDisplayName in a POST body changes nothing; a journalId naming another journal is
    JournalBatchIdNameNotMatchErr."""
    status, created = bc({"customerNumber": "10000", "amount": -1, "journalDisplayName": "OTHER"})
    assert status == 201 and created["journalDisplayName"] == "GENERAL"
    other = dialog(bc({"customerNumber": "10000", "journalId": "11111111-2222-4333-8444-555555555555"}))
    assert other == "The Journal Id and Journal Display Name do not match."
    status, _ = bc({"customerNumber": "10000", "amount": -1, "journalId": SANDBOX_JOURNAL_ID})
    assert status == 201


def test_line_posting_date_and_document_number_defaults(bc, sandbox):
    """Table 81 GetNewLineNo (last Line No. + 10000, 10000 when empty) and SetUpNewLine: an empty
    journal takes WorkDate and the number series' next number; a new last line takes the previous
    line's Posting Date and the next Document No. after it; a line inserted above takes the Posting
    Date and Document No. of the line above it (InitializeLine)."""
    sandbox.set_work_date(date(2026, 3, 31))
    _, first = bc({"customerNumber": "10000", "amount": -1})
    assert (first["lineNumber"], first["postingDate"], first["documentNumber"]) == (
        10000,
        "2026-03-31",
        "G00001",
    )
    _, dated = bc(
        {"customerNumber": "10000", "amount": -1, "postingDate": "2026-04-02", "documentNumber": "PAY-0009"}
    )
    assert dated["lineNumber"] == 20000
    _, after = bc({"customerNumber": "10000", "amount": -1})
    assert (after["lineNumber"], after["postingDate"], after["documentNumber"]) == (
        30000,
        "2026-04-02",
        "PAY-0010",
    )
    _, numbered = bc({"customerNumber": "10000", "amount": -1, "lineNumber": 35005})
    _, next_line = bc({"customerNumber": "10000", "amount": -1})
    assert (numbered["lineNumber"], next_line["lineNumber"]) == (35005, 45005)  # not rounded to 10000s
    _, above = bc({"customerNumber": "10000", "amount": -1, "lineNumber": 15000})
    assert (above["postingDate"], above["documentNumber"]) == ("2026-03-31", "G00001")


def test_the_amount_is_kept_as_sent_and_rounded_to_the_amount_precision(sandbox):
    """Table 81 Amount OnValidate: Round(Amount, Currency."Amount Rounding Precision"), 0.01 from General
    Ledger Setup; the sign is kept (the API does not negate: REFERENCE 2). Checked digit for digit."""
    url = (
        f"{sandbox.bc_base_url}/companies({SANDBOX_COMPANY_ID})/customerPaymentJournals({SANDBOX_JOURNAL_ID})"
        "/customerPayments"
    )
    for sent, kept in [("1500", "1500"), ("-3.5", "-3.5"), ("10.005", "10.01"), ("-10.004", "-10.00")]:
        body = '{"customerNumber": "10000", "amount": ' + sent + "}"
        resp = requests.post(url, data=body, headers=AUTH, timeout=5)
        assert resp.status_code == 201 and f'"amount":{kept},' in resp.text, (sent, resp.text)


def test_description_defaults_to_the_customer_name(bc):
    """Table 81 Account No. OnValidate puts the customer's name in Description; a given one is kept."""
    assert bc({"customerNumber": "20000", "amount": -1})[1]["description"] == "Trey Research"
    assert bc({"customerNumber": "20000", "amount": -1, "description": "x"})[1]["description"] == "x"


def test_overlapping_inserts_into_one_journal_collide_on_the_line_number(bc, sandbox):
    """Table 81 GetNewLineNo reads the last line (FindLast) and the insert writes after it; Microsoft's
    performance guidance warns against parallel inserts under one parent. Two overlapping inserts that
    let the target number the line both read the same last line: the second fails on the primary key
    (Internal_EntityWithSameKeyExists) and creates nothing."""
    import threading

    sandbox.insert_gap = 0.3
    answers: list[tuple[int, dict]] = []
    threads = [
        threading.Thread(target=lambda n=n: answers.append(bc({"customerNumber": "10000", "amount": -n})))
        for n in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 409]
    [(_, refused)] = [a for a in answers if a[0] == 409]
    assert refused["error"]["code"] == "Internal_EntityWithSameKeyExists"
    assert "Line No.='10000'" in refused["error"]["message"]
    assert [p["lineNumber"] for p in sandbox.payments()] == [10000]


def _post_journal(sandbox: Sandbox) -> requests.Response:
    url = f"{sandbox.bc_base_url}/companies({SANDBOX_COMPANY_ID})/journals({SANDBOX_JOURNAL_ID})/Microsoft.NAV.post"
    return requests.post(url, headers=AUTH, timeout=5)


def test_the_post_action_is_page_30016s_and_takes_a_customer_payment_journals_id(bc, sandbox):
    """Page 30016 "APIV2 - Journals" (Apps/W1/APIV2/app/src/pages/APIV2Journals.Page.al) has the bound
    action post; its OnFindRecord looks the batch up by SystemId alone when one is given, whatever its
    template, so journals(<a customer payment journal's id>)/Microsoft.NAV.post posts that journal. Page
    30013 (customerPaymentJournals) has no actions. An empty batch: PostBatch's "There is nothing to
    post.". Unverified against Business Central online (the relay's README says so)."""
    empty = _post_journal(sandbox)
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "Application_DialogException")
    assert empty.json()["error"]["message"] == "There is nothing to post."
    bc({"customerNumber": "10000", "amount": -5, "documentNumber": "J-1", "postingDate": "2026-11-20"})
    old = requests.post(
        f"{sandbox.bc_base_url}/companies({SANDBOX_COMPANY_ID})/customerPaymentJournals({SANDBOX_JOURNAL_ID})"
        "/Microsoft.NAV.post",
        headers=AUTH,
        timeout=5,
    )
    assert old.status_code in (400, 404) and len(sandbox.payments()) == 1  # no such action: nothing posted
    assert _post_journal(sandbox).status_code == 204 and sandbox.payments() == []


def test_posting_checks_every_line_first_and_posts_nothing_when_one_fails(bc, sandbox):
    """Gen. Jnl.-Post Batch runs Gen. Jnl.-Check Line on every line before posting any: a customer
    payment with a positive amount fails CheckDocType with FieldError(Amount, 'must be negative'), a
    line without a customer TestField("Account No."), and the journal keeps all its lines."""
    bc({"customerNumber": "10000", "amount": -5, "documentNumber": "OK-1"})
    bc({"customerNumber": "10000", "amount": 5, "documentNumber": "POS-1"})
    resp = _post_journal(sandbox)
    assert resp.status_code == 400
    assert resp.json()["error"] == {
        "code": "Application_FieldValidationException",
        "message": "Amount must be negative in Gen. Journal Line Journal Template Name='CASHRCPT',"
        "Journal Batch Name='GENERAL',Line No.='20000'.",
    }
    assert len(sandbox.payments()) == 2 and sandbox.ledger_entries() == []
    sandbox.reset()
    bc({"appliesToInvoiceNumber": "unknown-1", "amount": -5})
    message = _post_journal(sandbox).json()["error"]["message"]
    assert message.startswith("Account No. must have a value in Gen. Journal Line")


def test_posting_turns_lines_into_ledger_entries_and_empties_the_journal(bc, sandbox):
    """Gen. Jnl.-Post Batch posts the lines and deletes them from the journal; the posted payment is then
    found through API v2.0 generalLedgerEntries (page 30018: documentNumber, postingDate, accountNumber,
    debitAmount, creditAmount; it has no externalDocumentNumber)."""
    bc({"customerNumber": "10000", "amount": -120.50, "documentNumber": "PAY-7", "postingDate": "2026-11-20"})
    bc({"customerNumber": "20000", "amount": -3, "documentNumber": "PAY-8", "postingDate": "2026-11-20"})
    assert _post_journal(sandbox).status_code == 204
    assert sandbox.payments() == []
    url = f"{sandbox.bc_base_url}/companies({SANDBOX_COMPANY_ID})/generalLedgerEntries"
    found = requests.get(url, params={"$filter": "documentNumber eq 'PAY-7'"}, headers=AUTH, timeout=5)
    assert found.status_code == 200
    entries = found.json()["value"]
    assert [(e["accountNumber"], e["debitAmount"], e["creditAmount"]) for e in entries] == [
        ("2310", 0, 120.5),
        ("2910", 120.5, 0),
    ]
    assert {e["documentNumber"] for e in entries} == {"PAY-7"} and "externalDocumentNumber" not in entries[0]
    assert '"creditAmount":120.5,' in found.text  # the digits sent (-120.5), negated
    assert len(sandbox.ledger_entries()) == 4


def test_an_operator_posts_a_journal_from_the_command_line(bc, sandbox):
    """`python -m sandbox post-journal` calls the journal's Microsoft.NAV.post action on a running sandbox."""
    import subprocess
    import sys

    bc({"customerNumber": "10000", "amount": -5, "documentNumber": "CLI-1"})
    run = [sys.executable, "-m", "sandbox", "post-journal", "--port", str(sandbox.port)]
    done = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "posted (204)" in done.stdout, done.stderr
    assert sandbox.payments() == [] and len(sandbox.ledger_entries()) == 2
    bc({"customerNumber": "10000", "amount": 5, "documentNumber": "CLI-2"})
    refused = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "Amount must be negative" in refused.stderr


def test_answers_carry_odata_context_and_etag(bc, sandbox):
    """REFERENCE section 2: answers carry `@odata.context` and `@odata.etag` (OData v4 JSON format, as
    every Business Central API page answers): the entity's context on a POST, the collection's on a GET,
    an etag on every entity."""
    status, created = bc({"customerNumber": "10000", "amount": -3})
    journal = f"companies({SANDBOX_COMPANY_ID})/customerPaymentJournals({SANDBOX_JOURNAL_ID})"
    assert status == 201
    assert created["@odata.context"] == (
        f"{sandbox.url}/v2.0/sandbox-tenant/sandbox/api/v2.0/$metadata#{journal}/customerPayments/$entity"
    )
    assert created["@odata.etag"].startswith('W/"') and created["@odata.etag"].endswith('"')
    listed = requests.get(f"{sandbox.bc_base_url}/{journal}/customerPayments", headers=AUTH, timeout=5).json()
    assert listed["@odata.context"] == created["@odata.context"].removesuffix("/$entity")
    assert [row["@odata.etag"] for row in listed["value"]] == [created["@odata.etag"]]
    assert "@odata.context" not in listed["value"][0]
